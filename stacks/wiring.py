"""Everything one target's stacks need, derived once from the config and the manifest: one frozen
config per stack, and `target_stacks`, which builds them.

The stacks take these frozen objects and nothing else, so what a stack renders is a pure
function of them; the deterministic names all come from `stacks.naming`, the model versions
and deployments from `stacks.versions`, the Earth Engine call from `stacks.earth_engine`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from build_hooks.manifest import GOLDEN_NAME, Manifest
from config.images import registry_host
from config.rollout import ConfigError, RolloutConfig
from config.target import TargetConfig
from stacks import naming
from stacks.earth_engine import from_vertex_ai_args, from_vertex_ai_snippet
from stacks.environment import GOOGLE_PROVIDER, Backend, StackLayout, VertexProviderConfig
from stacks.versions import DeploymentSpec, ImageSpec, ModelVersion, deployment_spec, image_spec, model_version


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
class RegistryConfig:
    """The target's Artifact Registry repository for our serving images."""

    stack: str
    project: str
    region: str
    repository_id: str
    labels: dict[str, str]
    kms_key: str | None
    images: tuple[str, ...]
    """`<uri>/<name>@sha256:<digest>` of every image a model version here uses."""
    keep_tags: tuple[str, ...]
    """Their immutable tags, which the cleanup policy keeps."""
    backend: Backend

    @property
    def uri(self) -> str:
        return f"{registry_host(self.region)}/{self.project}/{self.repository_id}"


@dataclass(frozen=True)
class RequestLogging:
    """The endpoint's request-response logging: the dataset the stack creates, the table Vertex AI does."""

    dataset_id: str
    table_id: str
    sampling_rate: float

    def output_uri(self, project: str) -> str:
        """io.py BigQueryDestination.output_uri, the full-table form `bq://project.dataset.table`."""
        return f"bq://{project}.{self.dataset_id}.{self.table_id}"


@dataclass(frozen=True)
class AlertPolicy:
    """The endpoint's alert policy: 5xx error ratio and p99 latency (config `monitoring`)."""

    display_name: str
    error_rate: float
    p99_latency_ms: int
    window_seconds: int
    notification_channels: tuple[str, ...]


@dataclass(frozen=True)
class ResourcePool:
    """A deployment resource pool the endpoint stack creates, with the target's machines."""

    pool_id: str
    machine_type: str
    accelerator_type: str | None
    accelerator_count: int | None
    min_replica_count: int
    max_replica_count: int


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
    earth_engine: dict
    """The `ee.Model.fromVertexAi` arguments for this endpoint (see `from_vertex_ai_args`)."""
    earth_engine_snippet: str
    """The same arguments as Python to paste."""
    predict_scope: str = "endpoint"
    """Where predict_members get the predict role: "endpoint" (this endpoint) or "project"."""
    import_id: str | None = None
    """An endpoint that exists (config `adopt.endpoint`), imported on the next apply."""
    request_logging: RequestLogging | None = None
    alert_policy: AlertPolicy | None = None
    """None: monitoring is off."""
    resource_pool: ResourcePool | None = None
    """A pool this stack creates (config `resource_pool.create`)."""


@dataclass(frozen=True)
class ModelStackConfig:
    stack: str
    images: tuple[ImageSpec, ...]
    """Our images the versions run, pushed before the versions are uploaded."""
    models: tuple[ModelVersion, ...]
    """The current artifact's version, and the previous one while a canary splits traffic."""
    provider: VertexProviderConfig
    backend: Backend


@dataclass(frozen=True)
class DeploymentConfig:
    stack: str
    project: str
    region: str
    endpoint_id: str
    deployments: tuple[DeploymentSpec, ...]
    split: dict[str, int]
    """The endpoint's whole traffic split: deployed-model ID -> percent, summing to 100."""
    verification: dict[str, str]
    """Deployed-model ID of the current artifact -> its golden tile in the bucket
    (`gs://BUCKET/PREFIX/golden.json#sha256=HEX`), checked when it takes traffic. Not for an
    adopted deployment: it served before the stacks knew it."""
    traffic_import_id: str | None
    provider: VertexProviderConfig
    backend: Backend


@dataclass(frozen=True)
class TargetStacks:
    target: TargetConfig
    bucket: BucketConfig
    registry: RegistryConfig | None
    """None where no model version of the target runs our image."""
    model: ModelStackConfig
    endpoint: EndpointConfig
    deployment: DeploymentConfig


def _backend(rollout: RolloutConfig, target: TargetConfig, stack: str, layout: StackLayout) -> Backend:
    if target.state_bucket:
        return Backend(gcs_bucket=target.state_bucket, gcs_prefix=f"{rollout.model.name}/{stack}")
    return Backend(local_path=layout.relative(stack, layout.state_dir / f"{stack}.tfstate"))


def target_stacks(
    rollout: RolloutConfig,
    manifest: Manifest,
    target: TargetConfig,
    layout: StackLayout,
    provider: VertexProviderConfig = GOOGLE_PROVIDER,
) -> TargetStacks:
    model = rollout.model
    if target.allow_unlisted_region:
        provider = dataclasses.replace(provider, allow_unlisted_regions=True)
    labels = {**naming.default_labels(model.name, target.name), **target.labels}
    names = {kind: naming.stack_name(target.name, kind) for kind in naming.STACK_KINDS}
    prefix = naming.artifact_prefix(model.name, manifest.sha256)
    artifact_root = rollout.artifact_dir / manifest.artifact_root

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

    endpoint_id = target.endpoint_id or naming.endpoint_id(target.project, target.region, model.name)
    earth_engine = from_vertex_ai_args(
        rollout, manifest, f"projects/{target.project}/locations/{target.region}/endpoints/{endpoint_id}"
    )
    endpoint = EndpointConfig(
        stack=names["endpoint"],
        project=target.project,
        region=target.region,
        endpoint_id=endpoint_id,
        display_name=target.endpoint_display_name or f"{model.name}-{target.name}",
        labels=labels,
        kms_key=target.kms_key,
        predict_members=target.predict_members,
        predict_role_id=f"eeVertexPredict_{model.name.replace('-', '_')}",
        backend=_backend(rollout, target, names["endpoint"], layout),
        earth_engine=earth_engine,
        earth_engine_snippet=from_vertex_ai_snippet(earth_engine, manifest.input_bands),
        predict_scope=target.predict_scope,
        import_id=(
            f"projects/{target.project}/locations/{target.region}/endpoints/{endpoint_id}"
            if target.adopt and target.adopt.endpoint
            else None
        ),
        request_logging=RequestLogging(
            dataset_id=target.request_logging.dataset or naming.request_log_dataset(model.name),
            table_id=target.request_logging.table,
            sampling_rate=float(target.request_logging.sampling_rate),
        )
        if target.request_logging
        else None,
        alert_policy=AlertPolicy(
            display_name=naming.alert_policy_name(model.name, target.name),
            error_rate=float(target.monitoring.error_rate),
            p99_latency_ms=target.monitoring.p99_latency_ms,
            window_seconds=target.monitoring.window_seconds,
            notification_channels=target.monitoring.notification_channels,
        )
        if target.monitoring.enabled
        else None,
        resource_pool=ResourcePool(
            pool_id=target.resource_pool.id,
            machine_type=target.machine_type,
            accelerator_type=target.accelerator_type,
            accelerator_count=target.accelerator_count or None,
            min_replica_count=target.min_replicas,
            max_replica_count=target.max_replicas,
        )
        if target.resource_pool and target.resource_pool.create
        else None,
    )

    # Both versions stay uploaded while `model.previous` is set, whatever the split: the
    # model stack is applied before the deployment stack, so a version must outlive the
    # deployments that move off it (promotion, rollback); dropping `model.previous`
    # afterwards deletes it. Only versions with a share of the traffic are deployed.
    current, image = model_version(rollout, manifest, target, labels, manifest.sha256, previous=False)
    versions, own = [(current, target.traffic_percent)], [image]
    if model.previous:
        previous, image = model_version(rollout, manifest, target, labels, model.previous.sha256, previous=True)
        if previous.version_alias == current.version_alias:
            raise ConfigError(
                f"model.previous: sha256 {model.previous.sha256[:12]}... with the same container is the current "
                "artifact; allowed: the sha256 of the artifact that served before this one"
            )
        versions.append((previous, 100 - target.traffic_percent))
        own.append(image)
    served = [(v.container_image_uri, i) for (v, _), i in zip(versions, own, strict=True) if i is not None]
    registry = None
    if served:
        registry = RegistryConfig(
            stack=names["registry"],
            project=target.project,
            region=target.region,
            repository_id=target.image_repository,
            labels=labels,
            kms_key=target.kms_key,
            images=tuple(dict.fromkeys(uri for uri, _ in served)),
            keep_tags=tuple(dict.fromkeys(i.tag for _, i in served)),
            backend=_backend(rollout, target, names["registry"], layout),
        )
    deployments = [
        (deployment_spec(model.name, target, version, endpoint_id), percent) for version, percent in versions if percent
    ]
    pushed = {i.digest: i for _, i in served}
    model_stack = ModelStackConfig(
        stack=names["model"],
        images=tuple(image_spec(i, target, names["model"], layout) for i in pushed.values()),
        models=tuple(version for version, _ in versions),
        provider=provider,
        backend=_backend(rollout, target, names["model"], layout),
    )
    adopted = any(d.import_id for d, _ in deployments)
    deployment = DeploymentConfig(
        stack=names["deployment"],
        project=target.project,
        region=target.region,
        endpoint_id=endpoint_id,
        deployments=tuple(d for d, _ in deployments),
        split={d.deployed_model_id: percent for d, percent in deployments},
        verification={
            d.deployed_model_id: f"gs://{target.bucket}/{prefix}/{GOLDEN_NAME}#sha256={manifest.golden_sha256}"
            for d, _ in deployments
            if target.verify_promotion and d.artifact_sha256 == manifest.sha256 and not d.import_id
        },
        traffic_import_id=(
            f"projects/{target.project}/locations/{target.region}/endpoints/{endpoint_id}" if adopted else None
        ),
        provider=provider,
        backend=_backend(rollout, target, names["deployment"], layout),
    )
    return TargetStacks(
        target=target, bucket=bucket, registry=registry, model=model_stack, endpoint=endpoint, deployment=deployment
    )
