"""`python -m stacks.hooks <action>`, with the resource's input as JSON in $EEV_HOOK_INPUT."""

from __future__ import annotations

import json
import os
import sys


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
        HOOKS[argv[0]](json.loads(raw))
    except Exception as error:  # noqa: BLE001 - Terraform shows this line as the failure
        print(f"[vertex] {argv[0]} failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
