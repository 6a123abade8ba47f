"""What every stack shares: its state backend and the local-exec hook command."""

from __future__ import annotations

from cdktn import GcsBackend, LocalBackend, LocalExecProvisioner, TerraformStack
from constructs import Construct

from stacks.wiring import Backend, HookConfig

# A plain command: no quotes, no shell `${...}` (see stacks/hooks/hook.sh), so the JSON
# and the `cdktf synth --hcl` renderings say the same thing.
HOOK = "sh stacks/hooks/hook.sh"


class BaseStack(TerraformStack):
    def __init__(self, scope: Construct, id: str, *, backend: Backend) -> None:
        super().__init__(scope, id)
        if backend.gcs_bucket:
            GcsBackend(self, bucket=backend.gcs_bucket, prefix=backend.gcs_prefix)
        else:
            LocalBackend(self, path=backend.local_path)


def hook(action: str, hooks: HookConfig, *, when: str | None = None) -> LocalExecProvisioner:
    """A provisioner that runs `python -m stacks.hooks <action>` on this resource's input.

    The hook reads only `self.input`, so destroy-time hooks work from state alone.
    """
    return LocalExecProvisioner(
        type="local-exec",
        command=f"{HOOK} {action}",
        working_dir=hooks.working_dir,
        environment={"EEV_HOOK_INPUT": "${jsonencode(self.input)}"},
        when=when,
    )
