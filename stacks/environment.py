"""Where synth writes the stacks, where their state lives, and which APIs the `eevertex` provider calls:
what differs between Google and the rehearsal, not what a target's config says."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class StackLayout:
    """Where synth writes stacks and where their local state lives."""

    outdir: Path
    state_dir: Path

    def stack_dir(self, stack: str) -> Path:
        return self.outdir / "stacks" / stack

    def relative(self, stack: str, path: Path) -> str:
        """A path as seen from the stack's directory, where terraform runs; relative so
        the synthesized JSON is the same on every machine."""
        return os.path.relpath(path, self.stack_dir(stack))


@dataclass(frozen=True)
class Backend:
    """Terraform state: local file by default, or GCS with one prefix per stack."""

    local_path: str | None = None
    gcs_bucket: str | None = None
    gcs_prefix: str | None = None


@dataclass(frozen=True)
class VertexProviderConfig:
    """The `eevertex` provider block: unset for Google (regional endpoints, Application
    Default Credentials, images pushed to Artifact Registry); the rehearsal points it at the
    local emulator and registry."""

    api_endpoint: str | None = None
    credentials: str | None = None
    registry_endpoint: str | None = None
    storage_endpoint: str | None = None
    """Where the provider reads golden tiles (Cloud Storage's JSON API); the rehearsal's GCS emulator."""
    allow_unlisted_regions: bool | None = None
    """Set for a target with `allow_unlisted_region`: the provider checks regions against the same list."""


GOOGLE_PROVIDER = VertexProviderConfig()
"""The provider block for Google itself: nothing set."""
