"""Typed constructs for our own Terraform provider `eevertex` (provider/; reference: docs/provider.md).

The same typed API as the google provider's generated bindings, without codegen: each
class declares its attributes once (name -> Terraform type), takes them as keyword
arguments, and renders them for JSON (`cdktf synth`) and HCL (`cdktf synth --hcl`).
Unset optional attributes are left out, so the provider's defaults and computed values
show in the plan as such.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cdktn import (
    ITerraformDependable,
    TerraformProvider,
    TerraformProviderGeneratorMetadata,
    TerraformResource,
    TerraformResourceLifecycle,
)
from constructs import Construct

PROVIDER_NAME = "eevertex"
PROVIDER_SOURCE = "ee-vertex.local/ee/eevertex"
PROVIDER_VERSION = "0.1.0"

# Terraform type of each attribute -> (HCL `type`, HCL `storageClassType`), as cdktf's
# generated bindings render them.
_HCL = {
    "string": ("simple", "string"),
    "number": ("simple", "number"),
    "bool": ("simple", "boolean"),
    "list(string)": ("list", "stringList"),
    "list(number)": ("list", "numberList"),
    "map(string)": ("map", "stringMap"),
    "map(number)": ("map", "numberMap"),
}


def _present(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _hcl(values: Mapping[str, Any], schema: Mapping[str, str]) -> dict[str, Any]:
    rendered = {}
    for name, value in _present(values).items():
        kind, storage = _HCL[schema[name]]
        rendered[name] = {"value": value, "isBlock": False, "type": kind, "storageClassType": storage}
    return rendered


def _keyword_values(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """A constructor's `locals()` less what is not a resource attribute."""
    return {
        k: v for k, v in arguments.items() if k not in ("self", "scope", "id", "create_before_destroy", "__class__")
    }


def _lifecycle(create_before_destroy: bool) -> TerraformResourceLifecycle | None:
    return TerraformResourceLifecycle(create_before_destroy=True) if create_before_destroy else None


class EeVertexProvider(TerraformProvider):
    """Provider `eevertex`. Leave `api_endpoint` and `credentials` unset for Google
    (regional endpoints, Application Default Credentials); the rehearsal points them at
    the local emulator."""

    SCHEMA = {
        "api_endpoint": "string",
        "credentials": "string",
        "operation_timeout_seconds": "number",
        "allow_unlisted_regions": "bool",
        "registry_endpoint": "string",
        "storage_endpoint": "string",
    }

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        api_endpoint: str | None = None,
        credentials: str | None = None,
        operation_timeout_seconds: int | None = None,
        allow_unlisted_regions: bool | None = None,
        registry_endpoint: str | None = None,
        storage_endpoint: str | None = None,
    ) -> None:
        super().__init__(
            scope,
            id,
            terraform_resource_type=PROVIDER_NAME,
            terraform_generator_metadata=TerraformProviderGeneratorMetadata(
                provider_name=PROVIDER_NAME, provider_version=PROVIDER_VERSION
            ),
            terraform_provider_source=PROVIDER_SOURCE,
        )
        self._values = {
            "api_endpoint": api_endpoint,
            "credentials": credentials,
            "operation_timeout_seconds": operation_timeout_seconds,
            "allow_unlisted_regions": allow_unlisted_regions,
            "registry_endpoint": registry_endpoint,
            "storage_endpoint": storage_endpoint,
        }

    def _synthesize_attributes(self) -> Mapping[str, Any]:
        return _present(self._values)

    def _synthesize_hcl_attributes(self) -> Mapping[str, Any]:
        return _hcl(self._values, self.SCHEMA)


class _EeVertexResource(TerraformResource):
    TYPE = ""
    SCHEMA: dict[str, str] = {}

    def __init__(
        self,
        scope: Construct,
        id: str,
        values: dict[str, Any],
        *,
        create_before_destroy: bool = False,
        depends_on: Sequence[ITerraformDependable] | None = None,
    ) -> None:
        super().__init__(
            scope,
            id,
            terraform_resource_type=self.TYPE,
            terraform_generator_metadata=TerraformProviderGeneratorMetadata(
                provider_name=PROVIDER_NAME, provider_version=PROVIDER_VERSION
            ),
            lifecycle=_lifecycle(create_before_destroy),
            depends_on=depends_on,
        )
        unknown = set(values) - set(self.SCHEMA)
        assert not unknown, f"{self.TYPE}: attributes missing from SCHEMA: {sorted(unknown)}"
        self._values = values

    def _synthesize_attributes(self) -> Mapping[str, Any]:
        return _present(self._values)

    def _synthesize_hcl_attributes(self) -> Mapping[str, Any]:
        return _hcl(self._values, self.SCHEMA)

    @property
    def id_(self) -> str:
        """The resource's `id` (a token until applied)."""
        return self.get_string_attribute("id")


class Image(_EeVertexResource):
    """`eevertex_image`: one of our serving images pushed by digest into the target's
    registry from the build's OCI layout (`source`, relative to the stack's folder). Every
    attribute but `source` forces a new push; deleting it only forgets it."""

    TYPE = "eevertex_image"
    SCHEMA = {"repository": "string", "name": "string", "digest": "string", "tag": "string", "source": "string"}

    def __init__(
        self, scope: Construct, id: str, *, repository: str, name: str, digest: str, tag: str, source: str
    ) -> None:
        super().__init__(scope, id, _keyword_values(locals()))


class Model(_EeVertexResource):
    """`eevertex_model`: one version of a Vertex AI model, uploaded from the bucket artifact.

    Artifact, container or key change -> a new version of the same parent model
    (create before destroy); display name, description and labels change in place."""

    TYPE = "eevertex_model"
    SCHEMA = {
        "project": "string",
        "region": "string",
        "model_id": "string",
        "version_alias": "string",
        "display_name": "string",
        "description": "string",
        "labels": "map(string)",
        "artifact_uri": "string",
        "container_image_uri": "string",
        "container_command": "list(string)",
        "container_args": "list(string)",
        "container_env": "map(string)",
        "container_ports": "list(number)",
        "container_grpc_ports": "list(number)",
        "container_predict_route": "string",
        "container_health_route": "string",
        "container_deployment_timeout_seconds": "number",
        "container_shared_memory_size_mb": "number",
        "container_startup_probe_exec": "list(string)",
        "container_startup_probe_period_seconds": "number",
        "container_startup_probe_timeout_seconds": "number",
        "container_health_probe_exec": "list(string)",
        "container_health_probe_period_seconds": "number",
        "container_health_probe_timeout_seconds": "number",
        "kms_key_name": "string",
    }

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        project: str,
        region: str,
        model_id: str,
        version_alias: str,
        display_name: str,
        artifact_uri: str,
        container_image_uri: str,
        description: str | None = None,
        labels: Mapping[str, str] | None = None,
        container_command: Sequence[str] | None = None,
        container_args: Sequence[str] | None = None,
        container_env: Mapping[str, str] | None = None,
        container_ports: Sequence[int] | None = None,
        container_grpc_ports: Sequence[int] | None = None,
        container_predict_route: str | None = None,
        container_health_route: str | None = None,
        container_deployment_timeout_seconds: int | None = None,
        container_shared_memory_size_mb: int | None = None,
        container_startup_probe_exec: Sequence[str] | None = None,
        container_startup_probe_period_seconds: int | None = None,
        container_startup_probe_timeout_seconds: int | None = None,
        container_health_probe_exec: Sequence[str] | None = None,
        container_health_probe_period_seconds: int | None = None,
        container_health_probe_timeout_seconds: int | None = None,
        kms_key_name: str | None = None,
        create_before_destroy: bool = True,
        depends_on: Sequence[ITerraformDependable] | None = None,
    ) -> None:
        values = {k: v for k, v in _keyword_values(locals()).items() if k != "depends_on"}
        super().__init__(scope, id, values, create_before_destroy=create_before_destroy, depends_on=depends_on)

    @property
    def version_id(self) -> str:
        return self.get_string_attribute("version_id")

    @property
    def model_name(self) -> str:
        return self.get_string_attribute("model_name")


class Deployment(_EeVertexResource):
    """`eevertex_deployment`: one model version deployed on an endpoint.

    Replicas (min, max, required), autoscaling targets and container logging change in
    place (mutateDeployedModel); model, machine, accelerator, service account, spot, access
    logging or pool -> a new deployment, created before the old one is undeployed. In a shared
    pool (`shared_resources`) the pool brings the machines and replicas: leave those unset."""

    TYPE = "eevertex_deployment"
    SCHEMA = {
        "project": "string",
        "region": "string",
        "endpoint_id": "string",
        "model": "string",
        "deployed_model_id": "string",
        "display_name": "string",
        "machine_type": "string",
        "accelerator_type": "string",
        "accelerator_count": "number",
        "spot": "bool",
        "min_replica_count": "number",
        "max_replica_count": "number",
        "required_replica_count": "number",
        "autoscaling_cpu_utilization_target": "number",
        "autoscaling_accelerator_duty_cycle_target": "number",
        "autoscaling_request_count_per_minute_target": "number",
        "service_account": "string",
        "disable_container_logging": "bool",
        "enable_access_logging": "bool",
        "shared_resources": "string",
    }

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        project: str,
        region: str,
        endpoint_id: str,
        model: str,
        deployed_model_id: str,
        machine_type: str | None = None,
        min_replica_count: int | None = None,
        max_replica_count: int | None = None,
        display_name: str | None = None,
        accelerator_type: str | None = None,
        accelerator_count: int | None = None,
        spot: bool | None = None,
        required_replica_count: int | None = None,
        autoscaling_cpu_utilization_target: int | None = None,
        autoscaling_accelerator_duty_cycle_target: int | None = None,
        autoscaling_request_count_per_minute_target: int | None = None,
        service_account: str | None = None,
        disable_container_logging: bool | None = None,
        enable_access_logging: bool | None = None,
        shared_resources: str | None = None,
        create_before_destroy: bool = True,
    ) -> None:
        super().__init__(scope, id, _keyword_values(locals()), create_before_destroy=create_before_destroy)


class TrafficSplit(_EeVertexResource):
    """`eevertex_traffic_split`: the endpoint's whole traffic split (deployed-model ID ->
    percent), changed in place; the provider refuses at plan time a split that does not
    sum to 100. `verification`: deployed-model ID -> golden tile (`gs://...#sha256=...`), which
    a deployment must answer right when it takes traffic, or the provider puts the split back."""

    TYPE = "eevertex_traffic_split"
    SCHEMA = {
        "project": "string",
        "region": "string",
        "endpoint_id": "string",
        "split": "map(number)",
        "verification": "map(string)",
    }

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        project: str,
        region: str,
        endpoint_id: str,
        split: Mapping[str, int],
        verification: Mapping[str, str] | None = None,
        depends_on: Sequence[ITerraformDependable] | None = None,
    ) -> None:
        values = {
            "project": project,
            "region": region,
            "endpoint_id": endpoint_id,
            "split": dict(split),
            "verification": dict(verification) if verification else None,
        }
        super().__init__(scope, id, values, depends_on=depends_on)
