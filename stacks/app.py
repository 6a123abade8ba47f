"""Build every target's four stacks into one cdktn App."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from cdktn import App

from build_hooks.manifest import Manifest, read_manifest, resolve_sha, verify_artifact
from stacks.bucket import BucketStack
from config.rollout import RolloutConfig
from stacks.deployment import DeploymentStack
from stacks.endpoint import EndpointStack
from stacks.model import ModelStack
from stacks.registry import RegistryStack
from stacks.wiring import PROJECT_ROOT, StackLayout, VertexProviderConfig, target_stacks


class ArtifactMismatch(ValueError):
    """The built artifact is not the one the config describes."""


def load_artifact(rollout: RolloutConfig) -> Manifest:
    """The manifest of the built artifact, checked against the config and the files on disk."""
    manifest = read_manifest(rollout.artifact_dir)
    model = rollout.model
    for field, built, wanted in (
        ("model.name", manifest.model_name, model.name),
        ("model.framework", manifest.framework, model.framework),
        ("model.payload_format", manifest.payload_format, model.payload_format.value),
    ):
        if built != wanted:
            raise ArtifactMismatch(
                f"{field}: the artifact in {rollout.artifact_dir} was built with {built!r} but the "
                f"config says {wanted!r}; rebuild with `nox -s build`"
            )
    verify_artifact(rollout.artifact_dir, manifest)
    return manifest


def resolve_previous(rollout: RolloutConfig) -> RolloutConfig:
    """The config with model.previous.sha256 as 64 hex digits (a short prefix is resolved
    against the artifacts built in artifact_dir)."""
    previous = rollout.model.previous
    if previous is None or len(previous.sha256) == 64:
        return rollout
    full = resolve_sha(rollout.artifact_dir, previous.sha256)
    model = rollout.model.model_copy(update={"previous": previous.model_copy(update={"sha256": full})})
    return rollout.model_copy(update={"model": model})


def build_app(
    rollout: RolloutConfig,
    manifest: Manifest,
    *,
    outdir: Path,
    state_dir: Path | None = None,
    vertex_provider: VertexProviderConfig = VertexProviderConfig(),
) -> App:
    """One App, four or five stacks per target, with explicit dependencies:
    bucket, registry -> model -> deployment <- endpoint (the registry where a model version
    runs our serving image). `vertex_provider` is for the rehearsal (emulator endpoint);
    stacks for Google leave it unset."""
    rollout = resolve_previous(rollout)
    layout = StackLayout(outdir=outdir.resolve(), state_dir=(state_dir or PROJECT_ROOT / "terraform-state").resolve())
    app = App(outdir=str(layout.outdir), skip_validation=False)
    for target in rollout.targets:
        config = target_stacks(rollout, manifest, target, layout, vertex_provider)
        bucket = BucketStack(app, config.bucket.stack, config=config.bucket)
        model = ModelStack(app, config.model.stack, config=config.model)
        endpoint = EndpointStack(app, config.endpoint.stack, config=config.endpoint)
        deployment = DeploymentStack(app, config.deployment.stack, config=config.deployment)
        if config.registry is not None:
            model.add_dependency(RegistryStack(app, config.registry.stack, config=config.registry))
        model.add_dependency(bucket)
        deployment.add_dependency(model)
        deployment.add_dependency(endpoint)
    return app


# What Terraform leaves in a stack folder that a new synth makes stale: a saved plan of the
# old config, and the working directory (backend and providers as the old config had them).
STALE_IN_STACK = (".terraform", "plan.tfplan")
SYNTH_FILES = ("cdk.tf.json", "cdk.tf")


def synthesize(rollout: RolloutConfig, manifest: Manifest, *, outdir: Path, state_dir: Path | None = None) -> list[str]:
    """Synthesize the config's stacks into outdir, then remove what an earlier synth left that
    this config no longer names; returns the stack names.

    Only what synth owns is touched: stack folders holding a synthesized stack, and Terraform's
    working files inside them. Local state (`state_dir`) is never removed.
    """
    build_app(rollout, manifest, outdir=outdir, state_dir=state_dir).synth()
    return clean_outdir(outdir)


def clean_outdir(outdir: Path) -> list[str]:
    """Keep exactly the stacks of outdir's manifest, each without stale Terraform files."""
    stacks = json.loads((outdir / "manifest.json").read_text())["stacks"]
    for folder in sorted((outdir / "stacks").iterdir()):
        if folder.name not in stacks:
            if folder.is_dir() and any((folder / name).exists() for name in SYNTH_FILES):
                shutil.rmtree(folder)
            continue
        for name in STALE_IN_STACK:
            path = folder / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        _drop_mismatched_lock(folder)
    return sorted(stacks)


def _drop_mismatched_lock(stack_dir: Path) -> None:
    """A lock file that pins other provider versions than the stack requires would make
    `terraform init` refuse (e.g. after the move from google 6.x to 8.x): drop it."""
    lock = stack_dir / ".terraform.lock.hcl"
    config = stack_dir / "cdk.tf.json"
    if not lock.exists() or not config.exists():
        return
    locked = dict(re.findall(r'provider "(?:[^"/]+/)?([^"]+)" \{\s*version\s*=\s*"([^"]+)"', lock.read_text()))
    required = json.loads(config.read_text()).get("terraform", {}).get("required_providers", {})
    for provider in required.values():
        source, version = provider.get("source", ""), provider.get("version")
        if version and locked.get(source) != version:
            lock.unlink()
            return
