"""`python -m stacks.hooks <action>`, with the resource's input as JSON in $EEV_HOOK_INPUT."""

from __future__ import annotations

import json
import os
import sys

# The only numbers in a hook's input; everything else is a string. `cdktf synth --hcl`
# writes numeric-looking strings (deployed-model IDs, env values, labels) as HCL numbers,
# so Terraform hands them over as numbers: they are turned back into strings here.
NUMERIC = frozenset({"min_replica_count", "max_replica_count", "traffic_percent", "accelerator_count", "grpc_ports"})


def restore_types(value, key: str | None = None):
    """The input as synthesized, whether Terraform read it from cdk.tf.json or from HCL."""
    if isinstance(value, dict):
        if key == "split":
            return {str(k): int(v) for k, v in value.items()}
        return {k: restore_types(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [restore_types(item, key) for item in value]
    if isinstance(value, bool) or key in NUMERIC:
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    return value


def main(argv: list[str]) -> int:
    from stacks.hooks.vertex import HOOKS

    if len(argv) != 1 or argv[0] not in HOOKS:
        print(f"usage: python -m stacks.hooks <{'|'.join(HOOKS)}>", file=sys.stderr)
        return 2
    raw = os.environ.get("EEV_HOOK_INPUT")
    if not raw:
        print("EEV_HOOK_INPUT is empty: the hook needs its resource's input as JSON", file=sys.stderr)
        return 2
    try:
        HOOKS[argv[0]](restore_types(json.loads(raw)))
    except Exception as error:  # noqa: BLE001 - Terraform shows this line as the failure
        print(f"[vertex] {argv[0]} failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
