"""Build every target's four stacks into one cdktn App."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from cdktn import App

from build_hooks.manifest import Manifest, read_manifest, resolve_sha, verify_artifact
from config.rollout import RolloutConfig
from stacks.bucket import BucketStack
from stacks.deployment import DeploymentStack
from stacks.endpoint import EndpointStack
from stacks.environment import GOOGLE_PROVIDER, PROJECT_ROOT, StackLayout, VertexProviderConfig
from stacks.model import ModelStack
from stacks.registry import RegistryStack
from stacks.wiring import target_stacks


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
    vertex_provider: VertexProviderConfig = GOOGLE_PROVIDER,
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


# What Terraform leaves in a stack folder: a saved plan (always stale after a synth: it is
# the old config's), and the working directory and lock file, kept while they still fit.
STALE_IN_STACK = ("plan.tfplan",)
SYNTH_FILES = ("cdk.tf.json", "cdk.tf")
DEFAULT_REGISTRY = "registry.terraform.io"


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
            (folder / name).unlink(missing_ok=True)
        _drop_stale_working_files(folder)
    return sorted(stacks)


def provider_address(source: str) -> str:
    """A required_providers source as the lock file names it: `hashicorp/google` and `google`
    are `registry.terraform.io/hashicorp/google` (Terraform's provider address rules)."""
    parts = source.split("/")
    if len(parts) == 1:
        parts = ["hashicorp", *parts]
    if len(parts) == 2:
        parts = [DEFAULT_REGISTRY, *parts]
    return "/".join(parts).lower()


def _drop_stale_working_files(stack_dir: Path) -> None:
    """Keep `.terraform/` and `.terraform.lock.hcl` while they fit the new synth, so no `terraform
    init` is needed after every synth. The lock fits when it pins exactly the required
    providers with the constraints the stack requires (else `terraform init` would refuse it,
    e.g. after the move from google 6.x to 8.x): otherwise both go. `.terraform/` also goes when
    it was initialized for another backend."""
    config_file = stack_dir / "cdk.tf.json"
    if not config_file.exists():
        return
    terraform = json.loads(config_file.read_text()).get("terraform", {})
    required = {
        provider_address(p.get("source", name)): str(p.get("version", "")).replace(" ", "")
        for name, p in terraform.get("required_providers", {}).items()
    }
    lock, working = stack_dir / ".terraform.lock.hcl", stack_dir / ".terraform"
    if lock.exists():
        text = lock.read_text()
        locked = {
            address.lower(): _constraints(body)
            for address, body in re.findall(r'provider "([^"]+)" \{(.*?)\n\}', text, re.S)
        }
        if locked != required:
            lock.unlink()
            shutil.rmtree(working, ignore_errors=True)
            return
    elif required and working.is_dir():
        shutil.rmtree(working)  # providers installed without a lock: init again
        return
    backend_file = working / "terraform.tfstate"
    if working.is_dir() and backend_file.exists():
        initialized = json.loads(backend_file.read_text()).get("backend") or {}
        ((kind, wanted),) = (terraform.get("backend") or {"local": {}}).items()
        have = initialized.get("config") or {}
        if initialized.get("type") != kind or any(have.get(k) != v for k, v in wanted.items()):
            shutil.rmtree(working)


def _constraints(lock_entry: str) -> str:
    match = re.search(r'constraints\s*=\s*"([^"]*)"', lock_entry)
    return match.group(1).replace(" ", "") if match else ""
