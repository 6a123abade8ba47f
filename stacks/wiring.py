"""Everything one target's stacks need, derived once from the config and the manifest.

The stacks take these frozen objects and nothing else, so what a stack renders is a pure
function of them; the deterministic names all come from `stacks.naming`.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from build_hooks.manifest import ARTIFACT_SUBDIR, Manifest
from stacks import naming
from config.rollout import GRPC_PORT, RolloutConfig, TargetConfig

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
class ArtifactObject:
    name: str
    """Object name in the bucket (under the content-addressed prefix)."""
    source: str
    """Local file, relative to the stack directory."""


@dataclass(frozen=True)
class BucketConfig:
    stack: str
    project: str
    region: str
    bucket: str
    labels: dict[str, str]
    kms_key: str | None
    access_log_bucket: str | None
    objects: tuple[ArtifactObject, ...]
    backend: Backend


@dataclass(frozen=True)
class EndpointConfig:
    stack: str
    project: str
    region: str
    endpoint_id: str
    display_name: str
    labels: dict[str, str]
    kms_key: str | None
    predict_members: tuple[str, ...]
    predict_role_id: str
    backend: Backend
    predict_scope: str = "endpoint"
    """Where predict_members get the predict role: "endpoint" (this endpoint) or "project"."""


@dataclass(frozen=True)
class HookConfig:
    """How terraform's local-exec provisioners reach our Python hooks."""

    working_dir: str
    """Project root, relative to the stack directory."""


@dataclass(frozen=True)
class ModelStackConfig:
    stack: str
    models: tuple[dict, ...]
    """Full desired state of each model version to keep uploaded (the current artifact, and
    the previous one while a canary splits traffic): the terraform_data `input`s."""
    bands: dict
    """The current artifact's Earth Engine bands (an output, not part of any input: the
    previous artifact's bands are not known here, and are no reason to touch its model)."""
    hooks: HookConfig
    backend: Backend


@dataclass(frozen=True)
class DeploymentConfig:
    stack: str
    deployments: tuple[dict, ...]
    """Full desired state of each deployment on the endpoint (current, and previous during
    a canary), keyed in Terraform by deployed-model ID."""
    traffic_input: dict
    """The whole traffic split and replica bounds; changed in place, and the point where
    deployments no longer declared are undeployed."""
    release_input: dict
    """Endpoint and model name: what destroying the stack undeploys."""
    hooks: HookConfig
    backend: Backend


@dataclass(frozen=True)
class TargetStacks:
    target: TargetConfig
    bucket: BucketConfig
    model: ModelStackConfig
    endpoint: EndpointConfig
    deployment: DeploymentConfig


def spec_alias(container: dict) -> str:
    """Model-version alias for one container spec: the same artifact served by another
    image, env or port set becomes a new version of the same model ID."""
    digest = hashlib.sha256(json.dumps(container, sort_keys=True).encode()).hexdigest()
    return f"spec-{digest[:10]}"


def _model_input(
    rollout: RolloutConfig, target: TargetConfig, labels: dict[str, str], sha256: str, manifest: Manifest | None
) -> dict:
    """The full desired state of one uploaded model version."""
    model = rollout.model
    previous = model.previous if manifest is None else None
    image = (previous and previous.serving_image) or model.serving_image
    env = model.env if previous is None or previous.env is None else previous.env
    grpc = model.grpc if previous is None or previous.grpc is None else previous.grpc
    # Unset optional values are left out rather than null: cdktn drops nulls, and the
    # hooks read them with .get().
    container = _without_none({
        "image_uri": image,
        "env": [{"name": k, "value": v} for k, v in sorted(env.items())],
        "grpc_ports": [GRPC_PORT] if grpc else [],
        "predict_route": model.predict_route,
        "health_route": model.health_route,
    })
    model_id = naming.model_id(model.name, sha256)
    alias = spec_alias(container)
    location = f"projects/{target.project}/locations/{target.region}"
    spec = {
        "project": target.project,
        "region": target.region,
        "model_id": model_id,
        "version_alias": alias,
        "model": f"{location}/models/{model_id}@{alias}",
        "display_name": model.name,
        "description": f"{model.framework} model for Earth Engine ({model.payload_format.value}), "
        f"artifact sha256 {sha256}",
        "framework": model.framework,
        "payload_format": model.payload_format.value,
        "artifact_uri": f"gs://{target.bucket}/{naming.artifact_prefix(model.name, sha256)}/",
        "artifact_sha256": sha256,
        "container": container,
        "labels": labels,
    }
    if target.kms_key:
        spec["kms_key"] = target.kms_key
    return spec


def _deployment_input(target: TargetConfig, model: dict, endpoint_name: str, percent: int) -> dict:
    """The full desired state of one model version's deployment on the endpoint."""
    machine_spec = _without_none({
        "machine_type": target.machine_type,
        "accelerator_type": target.accelerator_type,
        "accelerator_count": target.accelerator_count,
    })
    deployed_id = naming.deployed_model_id(
        endpoint_name, json.dumps([model["model"], machine_spec, target.service_account])
    )
    return _without_none({
        "project": target.project,
        "region": target.region,
        "endpoint": endpoint_name,
        "model_name": model["display_name"],
        "model": model["model"],
        "artifact_sha256": model["artifact_sha256"],
        "deployed_model_id": deployed_id,
        "display_name": f"{model['model_id']}-{target.name}",
        "machine_spec": machine_spec,
        "service_account": target.service_account,
        "min_replica_count": target.min_replicas,
        "max_replica_count": target.max_replicas,
        "traffic_percent": percent,
        "grpc_ports": model["container"]["grpc_ports"],
    })


def _without_none(values: dict) -> dict:
    return {k: v for k, v in values.items() if v is not None}


def _backend(rollout: RolloutConfig, target: TargetConfig, stack: str, layout: StackLayout) -> Backend:
    if target.state_bucket:
        return Backend(gcs_bucket=target.state_bucket, gcs_prefix=f"{rollout.model.name}/{stack}")
    return Backend(local_path=layout.relative(stack, layout.state_dir / f"{stack}.tfstate"))


def target_stacks(
    rollout: RolloutConfig, manifest: Manifest, target: TargetConfig, layout: StackLayout
) -> TargetStacks:
    model = rollout.model
    labels = {**naming.default_labels(model.name, target.name), **target.labels}
    names = {kind: naming.stack_name(target.name, kind) for kind in naming.STACK_KINDS}
    prefix = naming.artifact_prefix(model.name, manifest.sha256)
    artifact_root = rollout.artifact_dir / ARTIFACT_SUBDIR

    bucket = BucketConfig(
        stack=names["bucket"],
        project=target.project,
        region=target.region,
        bucket=target.bucket,
        labels=labels,
        kms_key=target.kms_key,
        access_log_bucket=target.access_log_bucket,
        objects=tuple(
            ArtifactObject(
                name=f"{prefix}/{f.path}",
                source=layout.relative(names["bucket"], artifact_root / f.path),
            )
            for f in manifest.files
        ),
        backend=_backend(rollout, target, names["bucket"], layout),
    )

    endpoint_id = naming.endpoint_id(target.project, target.region, model.name)
    endpoint = EndpointConfig(
        stack=names["endpoint"],
        project=target.project,
        region=target.region,
        endpoint_id=endpoint_id,
        display_name=f"{model.name}-{target.name}",
        labels=labels,
        kms_key=target.kms_key,
        predict_members=target.predict_members,
        predict_role_id=f"eeVertexPredict_{model.name.replace('-', '_')}",
        backend=_backend(rollout, target, names["endpoint"], layout),
        predict_scope=target.predict_scope,
    )

    location = f"projects/{target.project}/locations/{target.region}"
    endpoint_name = f"{location}/endpoints/{endpoint_id}"
    current = _model_input(rollout, target, labels, manifest.sha256, manifest)
    deployments = [_deployment_input(target, current, endpoint_name, target.traffic_percent)]
    models = [current]
    if target.traffic_percent < 100 and model.previous:
        previous = _model_input(rollout, target, labels, model.previous.sha256, None)
        models.append(previous)
        deployments.append(
            _deployment_input(target, previous, endpoint_name, 100 - target.traffic_percent)
        )
    model_stack = ModelStackConfig(
        stack=names["model"],
        models=tuple(models),
        bands={
            "input_bands": list(manifest.input_bands),
            "output_bands": {b.name: b.model_dump(exclude_none=True) for b in manifest.output_bands},
        },
        hooks=HookConfig(working_dir=layout.relative(names["model"], PROJECT_ROOT)),
        backend=_backend(rollout, target, names["model"], layout),
    )
    traffic_input = {
        "project": target.project,
        "region": target.region,
        "endpoint": endpoint_name,
        "model_name": model.name,
        "split": {d["deployed_model_id"]: d["traffic_percent"] for d in deployments},
        "models": [m["model"] for m in models],
        "min_replica_count": target.min_replicas,
        "max_replica_count": target.max_replicas,
    }
    deployment = DeploymentConfig(
        stack=names["deployment"],
        deployments=tuple(deployments),
        traffic_input=traffic_input,
        release_input={k: traffic_input[k] for k in ("project", "region", "endpoint", "model_name")},
        hooks=HookConfig(working_dir=layout.relative(names["deployment"], PROJECT_ROOT)),
        backend=_backend(rollout, target, names["deployment"], layout),
    )
    return TargetStacks(target=target, bucket=bucket, model=model_stack, endpoint=endpoint, deployment=deployment)

