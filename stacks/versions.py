"""A target's model versions and their deployments: which versions it keeps (the current artifact's,
and the previous one's while `model.previous` is set), the image each runs, its alias, and each
deployment's ID, machines and options, as the `eevertex` resources take them."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, fields

from build_hooks.manifest import Manifest, ManifestError, ServingImage, read_manifest
from config.images import registry_host
from config.model import GRPC_PORT, PreviousArtifact
from config.rollout import RolloutConfig
from config.target import TargetConfig
from stacks import naming
from stacks.environment import PROJECT_ROOT, StackLayout


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

        print(
            f"synth: model.previous: {sha256[:12]} is not built in {rollout.artifact_dir}; its model version is "
            "taken to run the current artifact's image (set model.previous.serving_image if it does not)",
            file=sys.stderr,
        )
        return manifest.serving_images


def _container_image(
    rollout: RolloutConfig, manifest: Manifest, target: TargetConfig, sha256: str, prior: PreviousArtifact | None
) -> tuple[str, ServingImage | None]:
    """(image URI, our image or None) that serves artifact `sha256` on this target."""
    if prior and prior.serving_image:
        return prior.serving_image, None
    own = rollout.own_image(target)
    if own is None:
        uri = rollout.serving_image(target)
        # The config's validation sees to it: a target without our image names a prebuilt or custom one.
        assert uri is not None, f"target {target.name}: no serving image"
        return uri, None
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


def model_version(
    rollout: RolloutConfig,
    manifest: Manifest,
    target: TargetConfig,
    labels: dict[str, str],
    sha256: str,
    *,
    previous: bool,
) -> tuple[ModelVersion, ServingImage | None]:
    model = rollout.model
    prior = model.previous if previous else None
    image, own = _container_image(rollout, manifest, target, sha256, prior)
    spec = rollout.own_image(target) if own else None
    predict_route = spec.predict_route if spec else model.predict_route
    health_route = spec.health_route if spec else model.health_route
    # The target's env over the model's, on every version the target keeps (the previous one
    # too, so that its version stays the one deployed while the target's env is unchanged).
    env = {**(model.env if prior is None or prior.env is None else prior.env), **target.env}
    grpc = model.grpc if prior is None or prior.grpc is None else prior.grpc
    container_env = dict(sorted(env.items()))
    grpc_ports = [GRPC_PORT] if grpc else []
    container = {
        "image_uri": image,
        "env": container_env,
        "grpc_ports": grpc_ports,
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
        container_env=container_env or None,
        container_grpc_ports=grpc_ports or None,
        container_predict_route=predict_route,
        container_health_route=health_route,
        kms_key_name=target.kms_key,
    )
    return version, own


def image_resource_id(image: ServingImage) -> str:
    return f"image_{image.name.replace('-', '_')}_{image.digest[7:19]}"


def image_spec(image: ServingImage, target: TargetConfig, stack: str, layout: StackLayout) -> ImageSpec:
    return ImageSpec(
        resource_id=image_resource_id(image),
        repository=f"{registry_host(target.region)}/{target.project}/{target.image_repository}",
        name=image.name,
        digest=image.digest,
        tag=image.tag,
        source=layout.relative(stack, PROJECT_ROOT / image.layout),
    )


def deployment_spec(model_name: str, target: TargetConfig, version: ModelVersion, endpoint_id: str) -> DeploymentSpec:
    endpoint_name = f"projects/{target.project}/locations/{target.region}/endpoints/{endpoint_id}"
    machine_spec = [target.machine_type, target.accelerator_type, target.accelerator_count]
    pool = (
        naming.resource_pool_name(target.project, target.region, target.resource_pool.id)
        if target.resource_pool
        else None
    )
    if pool:
        machine_spec = ["shared", pool]  # another deployment than one on machines of its own
    adopted_id = target.adopt.deployed_model_id if target.adopt and version.import_id is not None else None
    adopted = adopted_id is not None
    # Vertex AI cannot rename a deployed model (MutateDeployedModelRequest's mask has no
    # display_name): an adopted deployment keeps the name it has (unset: the provider keeps it).
    # What Vertex AI cannot change on a deployed model makes a new deployment, so a new ID;
    # spot and access logging count only when set, so the IDs of deployments without them stay.
    not_mutable: list[object] = [version.version_name, machine_spec, target.service_account]
    not_mutable += [{"spot": True}] if target.spot else []
    not_mutable += [{"access_logging": True}] if target.access_logging else []
    if adopted_id is not None:
        deployed_id = adopted_id
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
