"""Everything one target's stacks need, derived once from the config and the manifest.

The stacks take these frozen objects and nothing else, so what a stack renders is a pure
function of them; the deterministic names all come from `stacks.naming`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, fields
from pathlib import Path

from build_hooks.manifest import GOLDEN_NAME, Manifest, ManifestError, ServingImage, read_manifest
from config import payload
from config.images import registry_host
from config.model import GRPC_PORT
from config.rollout import ConfigError, RolloutConfig
from config.target import TargetConfig
from stacks import naming

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


def from_vertex_ai_args(rollout: RolloutConfig, manifest: Manifest, endpoint_name: str) -> dict:
    """The `ee.Model.fromVertexAi` keyword arguments (earthengine-api python/ee/model.py)
    that make Earth Engine send what the artifact serves: each output band's pixel type is
    the one the served model writes it in (`Band.type`, float unless declared otherwise)."""
    model = rollout.model
    if manifest.tile_size != model.tile_size:
        raise ManifestError(
            f"model.tile_size: the artifact was built for {manifest.tile_size} but the config says "
            f"{model.tile_size}; rebuild with `nox -s build`"
        )
    if model.input_bands and tuple(model.input_bands) != tuple(manifest.input_bands):
        raise ManifestError(
            f"model.input_bands: the config says {list(model.input_bands)} but the built model reads "
            f"{list(manifest.input_bands)}; allowed: the model's bands, in its order"
        )
    if not model.bands:
        # A custom source without input_bands: the bands are known only now, from the build.
        lengths = {b: model.input_shapes.get(b, 1) for b in manifest.input_bands}
        try:
            payload.check_budget(model.payload_format.value, lengths, model.tile_size, model.input_overlap,
                                 model.max_payload_bytes)
        except payload.PayloadTooLarge as error:
            raise ManifestError(f"model: {error} (set model.input_bands to have this checked before the build)") from None
    args = {
        "endpoint": endpoint_name,
        "payloadFormat": model.payload_format.value,
        "inputTileSize": [model.tile_size, model.tile_size],
        "inputOverlapSize": [model.input_overlap, model.input_overlap],
        "outputTileSize": [model.answer_size, model.answer_size],
        "outputBands": {b.name: {"type": b.type, "dimensions": b.dimensions} for b in manifest.output_bands},
        "maxPayloadBytes": model.max_payload_bytes,
    }
    if model.input_shapes:
        args["inputShapes"] = {name: [length] for name, length in model.input_shapes.items()}
    if model.projection:
        # As Google's notebooks call it (earthengine-community guides/linked/
        # Earth_Engine_PyTorch_Vertex_AI.ipynb: proj=ee.Projection('EPSG:4326').atScale(30),
        # fixInputProj=True): pixels sampled at the model's own CRS and scale.
        args["proj"] = {"crs": model.projection, "scale": model.scale}
        args["fixInputProj"] = True
    return args


def _python(key: str, value) -> str:
    """One argument's value as Python: outputBands' types as ee.PixelType, proj as ee.Projection."""
    if key == "outputBands":
        return "{" + ", ".join(
            f"{name!r}: {{'type': ee.PixelType.{band['type']}(), 'dimensions': {band['dimensions']}}}"
            for name, band in value.items()) + "}"
    if key == "proj":
        return f"ee.Projection({value['crs']!r}).atScale({value['scale']!r})"
    return repr(value)


def from_vertex_ai_call(args: dict) -> str:
    """`ee.Model.fromVertexAi(...)` with these arguments, as Python: the one rendering of the call,
    inside the snippet the endpoint stack outputs, which `review` prints and `nox -s
    earth-engine-check` runs (plan/earth_engine.py)."""
    return f"ee.Model.fromVertexAi({', '.join(f'{key}={_python(key, value)}' for key, value in args.items())})"


def from_vertex_ai_snippet(args: dict, input_bands) -> str:
    """The call as Python to paste after `import ee` and `ee.Initialize(...)`, `image` being the
    image to predict: one line, since `cdktf synth --hcl` writes a string's newlines into HCL,
    which Terraform refuses."""
    return (f"model = {from_vertex_ai_call(args)}; "
            f"predictions = model.predictImage(image.select({list(input_bands)!r}).float())")


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


@dataclass(frozen=True)
class ImageSpec:
    """One `eevertex_image`: our serving image pushed into the target's registry."""

    resource_id: str
    repository: str
    name: str
    digest: str
    tag: str
    source: str
    """The build's OCI image layout, relative to the model stack's folder."""

    def attributes(self) -> dict:
        return _attributes(self, ("resource_id",))


@dataclass(frozen=True)
class ModelVersion:
    """One `eevertex_model`: a version of the parent model `model_id`. The fields after
    `import_id` are the resource's attributes, as `stacks.vertex.Model` takes them."""

    resource_id: str
    """Terraform name, from the version alias: stable while this artifact and spec serve."""
    image_resource_id: str | None
    """The `eevertex_image` that pushes its image (our image), else None."""
    artifact_sha256: str
    import_id: str | None
    """A version created outside the stacks (config `adopt`), imported on the next apply."""
    project: str
    region: str
    model_id: str
    version_alias: str
    display_name: str
    description: str
    labels: dict[str, str]
    artifact_uri: str
    container_image_uri: str
    container_env: dict[str, str] | None
    container_grpc_ports: list[int] | None
    container_predict_route: str | None
    container_health_route: str | None
    kms_key_name: str | None

    @property
    def version_name(self) -> str:
        """The version by its alias, known before anything is applied."""
        return f"projects/{self.project}/locations/{self.region}/models/{self.model_id}@{self.version_alias}"

    def attributes(self) -> dict:
        return _attributes(self, ("resource_id", "image_resource_id", "artifact_sha256", "import_id"))


@dataclass(frozen=True)
class DeploymentSpec:
    """One `eevertex_deployment`: a model version on the endpoint."""

    resource_id: str
    artifact_sha256: str
    import_id: str | None
    project: str
    region: str
    endpoint_id: str
    model: str
    deployed_model_id: str
    display_name: str | None
    machine_type: str | None
    """None in a shared pool (`shared_resources`), which brings the machines; so the next four."""
    accelerator_type: str | None
    accelerator_count: int | None
    min_replica_count: int | None
    max_replica_count: int | None
    service_account: str | None
    shared_resources: str | None = None
    """`projects/P/locations/R/deploymentResourcePools/ID` (config `resource_pool`)."""
    required_replica_count: int | None = None
    spot: bool | None = None
    """True, or None (left out: an unset spot and `false` are one deployment)."""
    autoscaling_cpu_utilization_target: int | None = None
    autoscaling_accelerator_duty_cycle_target: int | None = None
    autoscaling_request_count_per_minute_target: int | None = None
    disable_container_logging: bool | None = None
    enable_access_logging: bool | None = None

    def attributes(self) -> dict:
        return _attributes(self, ("resource_id", "artifact_sha256", "import_id"))


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


def _attributes(spec, exclude: tuple[str, ...]) -> dict:
    return {f.name: getattr(spec, f.name) for f in fields(spec) if f.name not in exclude}


def version_alias(sha256: str, spec: dict) -> str:
    """The model version's alias, `a<sha256[:12]>-<spec[:8]>`: the artifact, and a hash of
    everything else that makes a new version (artifact URI, container, key), so two
    versions never claim one alias.

    Vertex AI's alias grammar is `[a-z][a-zA-Z0-9-]{0,126}[a-z0-9]` (Model.version_aliases,
    google/cloud/aiplatform_v1/types/model.py): the leading `a` keeps it from starting with
    a digit, which is what tells an alias from a version ID."""
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
    return f"a{sha256[:12]}-{digest[:8]}"


def _images_of(rollout: RolloutConfig, manifest: Manifest, sha256: str) -> tuple[ServingImage, ...]:
    """Our images recorded with the artifact `sha256`: the current manifest's, or those of a
    version built earlier in artifact_dir; for a version not built here (say, by another
    CI run), the current ones, said so on stderr (set model.previous.serving_image if the
    previous version runs another image)."""
    if sha256 == manifest.sha256:
        return manifest.serving_images
    try:
        return read_manifest(rollout.artifact_dir / sha256).serving_images
    except ManifestError:
        import sys

        print(f"synth: model.previous: {sha256[:12]} is not built in {rollout.artifact_dir}; its model version is "
              "taken to run the current artifact's image (set model.previous.serving_image if it does not)",
              file=sys.stderr)
        return manifest.serving_images


def _container_image(rollout: RolloutConfig, manifest: Manifest, target: TargetConfig, sha256: str,
                     prior) -> tuple[str, ServingImage | None]:
    """(image URI, our image or None) that serves artifact `sha256` on this target."""
    if prior and prior.serving_image:
        return prior.serving_image, None
    own = rollout.own_image(target)
    if own is None:
        return rollout.serving_image(target), None
    image = next((i for i in _images_of(rollout, manifest, sha256) if i.name == own.name), None)
    if image is None:
        raise ManifestError(
            f"model.artifact_dir: no {own.name} image is recorded with artifact {sha256[:12]} (built in "
            f"{rollout.artifact_dir}); allowed: build it again with `nox -s build`, or set "
            "model.previous.serving_image to the image URI its model version runs (`...@sha256:<digest>`)"
        )
    repository = f"{registry_host(target.region)}/{target.project}/{target.image_repository}"
    return f"{repository}/{image.name}@{image.digest}", image


def serving_image_uri(rollout: RolloutConfig, manifest: Manifest, target: TargetConfig) -> str:
    """The image URI the current artifact's model version runs on this target: our image in
    the target's registry by digest, or the prebuilt or custom image the config names."""
    return _container_image(rollout, manifest, target, manifest.sha256, None)[0]


def _model_version(
    rollout: RolloutConfig, manifest: Manifest, target: TargetConfig, labels: dict[str, str], sha256: str, *,
    previous: bool,
) -> tuple[ModelVersion, ServingImage | None]:
    model = rollout.model
    prior = model.previous if previous else None
    image, own = _container_image(rollout, manifest, target, sha256, prior)
    spec = rollout.own_image(target)
    predict_route = spec.predict_route if own else model.predict_route
    health_route = spec.health_route if own else model.health_route
    # The target's env over the model's, on every version the target keeps (the previous one
    # too, so that its version stays the one deployed while the target's env is unchanged).
    env = {**(model.env if prior is None or prior.env is None else prior.env), **target.env}
    grpc = model.grpc if prior is None or prior.grpc is None else prior.grpc
    container = {
        "image_uri": image,
        "env": dict(sorted(env.items())),
        "grpc_ports": [GRPC_PORT] if grpc else [],
        "predict_route": predict_route,
        "health_route": health_route,
    }
    artifact_uri = f"gs://{target.bucket}/{naming.artifact_prefix(model.name, sha256)}/"
    alias = version_alias(sha256, {**container, "artifact_uri": artifact_uri, "kms_key_name": target.kms_key})
    adopt = target.adopt if target.adopt and target.adopt.artifact_sha256 == sha256 else None
    model_id = (target.adopt.model_id if target.adopt else None) or model.name
    version = ModelVersion(
        resource_id=f"model_{alias.replace('-', '_')}",
        image_resource_id=image_resource_id(own) if own else None,
        artifact_sha256=sha256,
        import_id=adopt.model_version if adopt else None,
        project=target.project,
        region=target.region,
        model_id=model_id,
        version_alias=alias,
        display_name=model.display_name or model.name,
        # Model-level in Vertex AI (shared by every version, unlike version labels): the
        # same for every artifact, which the artifact URI already names.
        description=f"{model.framework} model for Earth Engine ({model.payload_format.value})",
        labels=labels,
        artifact_uri=artifact_uri,
        container_image_uri=image,
        # Empty is left out, as Vertex AI and an imported version have it (absent).
        container_env=container["env"] or None,
        container_grpc_ports=container["grpc_ports"] or None,
        container_predict_route=predict_route,
        container_health_route=health_route,
        kms_key_name=target.kms_key,
    )
    return version, own


def image_resource_id(image: ServingImage) -> str:
    return f"image_{image.name.replace('-', '_')}_{image.digest[7:19]}"


def _image_spec(image: ServingImage, target: TargetConfig, stack: str, layout: StackLayout) -> ImageSpec:
    return ImageSpec(
        resource_id=image_resource_id(image),
        repository=f"{registry_host(target.region)}/{target.project}/{target.image_repository}",
        name=image.name, digest=image.digest, tag=image.tag,
        source=layout.relative(stack, PROJECT_ROOT / image.layout),
    )


def _deployment(model_name: str, target: TargetConfig, version: ModelVersion, endpoint_id: str) -> DeploymentSpec:
    endpoint_name = f"projects/{target.project}/locations/{target.region}/endpoints/{endpoint_id}"
    machine_spec = [target.machine_type, target.accelerator_type, target.accelerator_count]
    pool = (naming.resource_pool_name(target.project, target.region, target.resource_pool.id)
            if target.resource_pool else None)
    if pool:
        machine_spec = ["shared", pool]  # another deployment than one on machines of its own
    adopted = version.import_id is not None and target.adopt.deployed_model_id is not None
    # Vertex AI cannot rename a deployed model (MutateDeployedModelRequest's mask has no
    # display_name): an adopted deployment keeps the name it has (unset: the provider keeps it).
    # What Vertex AI cannot change on a deployed model makes a new deployment, so a new ID;
    # spot and access logging count only when set, so the IDs of deployments without them stay.
    not_mutable = [version.version_name, machine_spec, target.service_account]
    not_mutable += [{"spot": True}] if target.spot else []
    not_mutable += [{"access_logging": True}] if target.access_logging else []
    if adopted:
        deployed_id = target.adopt.deployed_model_id
    else:
        deployed_id = naming.deployed_model_id(endpoint_name, json.dumps(not_mutable))
    return DeploymentSpec(
        resource_id=f"deployment_{version.version_alias.replace('-', '_')}",
        artifact_sha256=version.artifact_sha256,
        import_id=f"{endpoint_name}/deployedModels/{deployed_id}" if adopted else None,
        project=target.project,
        region=target.region,
        endpoint_id=endpoint_id,
        # The imported version by its ID until our alias is on it; ours by alias.
        model=version.import_id or version.version_name,
        deployed_model_id=deployed_id,
        display_name=None if adopted else f"{model_name}-{version.version_alias}",
        machine_type=None if pool else target.machine_type,
        accelerator_type=None if pool else target.accelerator_type,
        accelerator_count=None if pool else target.accelerator_count or None,
        min_replica_count=None if pool else target.min_replicas,
        max_replica_count=None if pool else target.max_replicas,
        service_account=target.service_account,
        required_replica_count=None if pool else target.required_replicas,
        spot=True if target.spot and not pool else None,
        **({} if pool else target.autoscaling.targets(accelerators=bool(target.accelerator_count))),
        disable_container_logging=not target.container_logging,
        enable_access_logging=target.access_logging,
        shared_resources=pool,
    )


def _backend(rollout: RolloutConfig, target: TargetConfig, stack: str, layout: StackLayout) -> Backend:
    if target.state_bucket:
        return Backend(gcs_bucket=target.state_bucket, gcs_prefix=f"{rollout.model.name}/{stack}")
    return Backend(local_path=layout.relative(stack, layout.state_dir / f"{stack}.tfstate"))


def target_stacks(
    rollout: RolloutConfig,
    manifest: Manifest,
    target: TargetConfig,
    layout: StackLayout,
    provider: VertexProviderConfig = VertexProviderConfig(),
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
        import_id=(f"projects/{target.project}/locations/{target.region}/endpoints/{endpoint_id}"
                   if target.adopt and target.adopt.endpoint else None),
        request_logging=RequestLogging(
            dataset_id=target.request_logging.dataset or naming.request_log_dataset(model.name),
            table_id=target.request_logging.table,
            sampling_rate=float(target.request_logging.sampling_rate),
        ) if target.request_logging else None,
        alert_policy=AlertPolicy(
            display_name=naming.alert_policy_name(model.name, target.name),
            error_rate=float(target.monitoring.error_rate),
            p99_latency_ms=target.monitoring.p99_latency_ms,
            window_seconds=target.monitoring.window_seconds,
            notification_channels=target.monitoring.notification_channels,
        ) if target.monitoring.enabled else None,
        resource_pool=ResourcePool(
            pool_id=target.resource_pool.id,
            machine_type=target.machine_type,
            accelerator_type=target.accelerator_type,
            accelerator_count=target.accelerator_count or None,
            min_replica_count=target.min_replicas,
            max_replica_count=target.max_replicas,
        ) if target.resource_pool and target.resource_pool.create else None,
    )

    # Both versions stay uploaded while `model.previous` is set, whatever the split: the
    # model stack is applied before the deployment stack, so a version must outlive the
    # deployments that move off it (promotion, rollback); dropping `model.previous`
    # afterwards deletes it. Only versions with a share of the traffic are deployed.
    current, image = _model_version(rollout, manifest, target, labels, manifest.sha256, previous=False)
    versions, own = [(current, target.traffic_percent)], [image]
    if model.previous:
        previous, image = _model_version(rollout, manifest, target, labels, model.previous.sha256, previous=True)
        if previous.version_alias == current.version_alias:
            raise ConfigError(
                f"model.previous: sha256 {model.previous.sha256[:12]}... with the same container is the current "
                "artifact; allowed: the sha256 of the artifact that served before this one"
            )
        versions.append((previous, 100 - target.traffic_percent))
        own.append(image)
    served = [(v.container_image_uri, i) for (v, _), i in zip(versions, own) if i is not None]
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
    deployments = [(_deployment(model.name, target, version, endpoint_id), percent)
                   for version, percent in versions if percent]
    pushed = {i.digest: i for _, i in served}
    model_stack = ModelStackConfig(
        stack=names["model"],
        images=tuple(_image_spec(i, target, names["model"], layout) for i in pushed.values()),
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
            if target.verify_promotion and d.artifact_sha256 == manifest.sha256 and not d.import_id},
        traffic_import_id=(
            f"projects/{target.project}/locations/{target.region}/endpoints/{endpoint_id}" if adopted else None
        ),
        provider=provider,
        backend=_backend(rollout, target, names["deployment"], layout),
    )
    return TargetStacks(target=target, bucket=bucket, registry=registry, model=model_stack, endpoint=endpoint,
                        deployment=deployment)
