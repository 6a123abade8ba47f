"""Build every target's four stacks into one cdktf App."""

from __future__ import annotations

from pathlib import Path

from cdktn import App

from build_hooks.manifest import Manifest, read_manifest, verify_artifact
from stacks.bucket import BucketStack
from config.rollout import RolloutConfig
from stacks.deployment import DeploymentStack
from stacks.endpoint import EndpointStack
from stacks.model import ModelStack
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


def build_app(
    rollout: RolloutConfig,
    manifest: Manifest,
    *,
    outdir: Path,
    state_dir: Path | None = None,
    vertex_provider: VertexProviderConfig = VertexProviderConfig(),
) -> App:
    """One App, four stacks per target, with explicit dependencies:
    bucket -> model -> deployment <- endpoint. `vertex_provider` is for the rehearsal
    (emulator endpoint); stacks for Google leave it unset."""
    layout = StackLayout(outdir=outdir.resolve(), state_dir=(state_dir or PROJECT_ROOT / "terraform-state").resolve())
    app = App(outdir=str(layout.outdir), skip_validation=False)
    for target in rollout.targets:
        config = target_stacks(rollout, manifest, target, layout, vertex_provider)
        bucket = BucketStack(app, config.bucket.stack, config=config.bucket)
        model = ModelStack(app, config.model.stack, config=config.model)
        endpoint = EndpointStack(app, config.endpoint.stack, config=config.endpoint)
        deployment = DeploymentStack(app, config.deployment.stack, config=config.deployment)
        model.add_dependency(bucket)
        deployment.add_dependency(model)
        deployment.add_dependency(endpoint)
    return app
