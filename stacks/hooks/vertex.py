"""Idempotent hooks on google-cloud-aiplatform: upload, deploy, set traffic, undeploy, delete.

Each hook takes the `input` of its terraform_data resource (the full desired state) and
brings Vertex AI to it; run twice, the second run finds nothing to do. Destroy-time hooks
use only that input, as Terraform keeps it in state.

Environment:
- EEV_VERTEX_API_ENDPOINT: override the regional endpoint (`http://127.0.0.1:8710` for
  the local emulator); default `<region>-aiplatform.googleapis.com`.
- EEV_OPERATION_TIMEOUT: seconds to wait for a long-running operation (default 3600).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

from google.api_core import exceptions as gexc


def log(message: str) -> None:
    print(f"[vertex] {message}", file=sys.stderr, flush=True)


@dataclass
class Clients:
    models: object
    endpoints: object


def clients(region: str, api_endpoint: str | None = None) -> Clients:
    from google.api_core.client_options import ClientOptions
    from google.cloud import aiplatform_v1

    endpoint = api_endpoint or os.environ.get("EEV_VERTEX_API_ENDPOINT") or f"{region}-aiplatform.googleapis.com"
    options = ClientOptions(api_endpoint=endpoint)
    kwargs: dict = {"client_options": options, "transport": "rest"}
    if endpoint.startswith("http://"):
        from google.auth.credentials import AnonymousCredentials

        kwargs["credentials"] = AnonymousCredentials()
    return Clients(
        models=aiplatform_v1.ModelServiceClient(**kwargs),
        endpoints=aiplatform_v1.EndpointServiceClient(**kwargs),
    )


def wait(operation, what: str):
    """Wait for a long-running operation, saying how long it has taken so far."""
    timeout = float(os.environ.get("EEV_OPERATION_TIMEOUT", "3600"))
    started = time.monotonic()
    shown = 0.0
    while not operation.done():
        elapsed = time.monotonic() - started
        if elapsed > timeout:
            raise TimeoutError(f"{what}: not done after {timeout:.0f}s")
        if elapsed - shown >= 15:
            log(f"{what}: still running ({elapsed:.0f}s)")
            shown = elapsed
        time.sleep(min(2.0, 0.1 + elapsed / 10))
    result = operation.result()
    log(f"{what}: done in {time.monotonic() - started:.1f}s")
    return result


def _get(getter, name: str):
    try:
        return getter(name=name)
    except gexc.NotFound:
        return None


# -- models ----------------------------------------------------------------------------


def model_upload(spec: dict, c: Clients | None = None) -> str:
    """Upload the artifact as model `model_id`, version alias `version_alias`."""
    from google.cloud.aiplatform_v1 import types

    c = c or clients(spec["region"])
    parent = f"projects/{spec['project']}/locations/{spec['region']}"
    model_name = f"{parent}/models/{spec['model_id']}"
    existing = _get(c.models.get_model, spec["model"])
    if existing is not None:
        if existing.artifact_uri.rstrip("/") != spec["artifact_uri"].rstrip("/"):
            raise RuntimeError(
                f"{spec['model']} exists with artifact {existing.artifact_uri}, not {spec['artifact_uri']}; "
                "delete it or change model.name"
            )
        log(f"{spec['model']} is already uploaded; nothing to do")
        return existing.name
    container = spec["container"]
    model = types.Model(
        display_name=spec["display_name"],
        description=spec["description"],
        artifact_uri=spec["artifact_uri"],
        labels=spec["labels"],
        version_aliases=[spec["version_alias"]],
        container_spec=types.ModelContainerSpec(
            image_uri=container["image_uri"],
            env=[types.EnvVar(name=e["name"], value=e["value"]) for e in container["env"]],
            grpc_ports=[types.Port(container_port=p) for p in container["grpc_ports"]],
            predict_route=container.get("predict_route") or "",
            health_route=container.get("health_route") or "",
        ),
        encryption_spec=types.EncryptionSpec(kms_key_name=spec["kms_key"]) if spec.get("kms_key") else None,
    )
    if _get(c.models.get_model, model_name) is None:
        request = types.UploadModelRequest(parent=parent, model_id=spec["model_id"], model=model)
        what = f"upload {spec['model_id']}"
    else:
        # Same artifact, another container spec: a new version of the same model ID.
        request = types.UploadModelRequest(parent=parent, parent_model=model_name, model=model)
        what = f"upload {spec['model_id']} version {spec['version_alias']}"
    log(f"{what} from {spec['artifact_uri']} (image {container['image_uri']}, grpc ports {container['grpc_ports']})")
    result = wait(c.models.upload_model(request=request), what)
    return f"{result.model}@{result.model_version_id}" if result.model_version_id else result.model


def model_delete(spec: dict, c: Clients | None = None) -> bool:
    """Delete the model version, unless it is gone already or still deployed."""
    c = c or clients(spec["region"])
    model = _get(c.models.get_model, spec["model"])
    if model is None:
        log(f"{spec['model']} does not exist; nothing to delete")
        return False
    if model.deployed_models:
        where = ", ".join(f"{d.endpoint} ({d.deployed_model_id})" for d in model.deployed_models)
        log(f"{spec['model']} is still deployed on {where}; left in place, the deployment hook deletes it when it undeploys it")
        return False
    return _delete_version(c, model)


def _delete_version(c: Clients, model) -> bool:
    versions = list(c.models.list_model_versions(name=model.name))
    if len(versions) <= 1:
        wait(c.models.delete_model(name=model.name), f"delete model {model.name}")
    else:
        wait(
            c.models.delete_model_version(name=f"{model.name}@{model.version_id}"),
            f"delete model version {model.name}@{model.version_id}",
        )
    return True


# -- deployments -----------------------------------------------------------------------


def _apportion(weights: dict[str, int], total: int) -> dict[str, int]:
    """Share `total` whole percent in proportion to weights (equally if all are zero);
    the rounding remainder goes to the largest weights, ties by ID, so it is stable."""
    if not weights:
        return {}
    if not sum(weights.values()):
        weights = {k: 1 for k in weights}
    weight_sum = sum(weights.values())
    shares = {k: total * w // weight_sum for k, w in weights.items()}
    for k in sorted(weights, key=lambda k: (-weights[k], k))[: total - sum(shares.values())]:
        shares[k] += 1
    return shares


def split_with(current: dict[str, int], deployed_id: str, percent: int) -> dict[str, int]:
    """The endpoint's traffic split with `deployed_id` at `percent`; the others share the
    rest in proportion to what they had. With nobody else, it takes 100."""
    others = {k: v for k, v in current.items() if k != deployed_id}
    if not others:
        return {deployed_id: 100}
    return {deployed_id: percent, **_apportion(others, 100 - percent)}


def split_without(current: dict[str, int], deployed_id: str) -> dict[str, int]:
    """The split once `deployed_id` is gone: the others share 100 pro rata."""
    return _apportion({k: v for k, v in current.items() if k != deployed_id}, 100)


def _endpoint(c: Clients, spec: dict):
    endpoint = _get(c.endpoints.get_endpoint, spec["endpoint"])
    if endpoint is None:
        raise RuntimeError(
            f"endpoint {spec['endpoint']} does not exist; apply the endpoint stack first"
        )
    return endpoint


def deploy(spec: dict, c: Clients | None = None) -> None:
    """Deploy the model version on the endpoint under the deterministic deployed-model ID."""
    from google.cloud.aiplatform_v1 import types

    c = c or clients(spec["region"])
    endpoint = _endpoint(c, spec)
    deployed_id = spec["deployed_model_id"]
    if any(d.id == deployed_id for d in endpoint.deployed_models):
        log(f"{spec['model']} is already deployed as {deployed_id}; nothing to do")
        return
    current = dict(endpoint.traffic_split)
    split = split_with(current, deployed_id, spec["traffic_percent"])
    if split[deployed_id] != spec["traffic_percent"]:
        log(f"no other model serves on the endpoint, so {deployed_id} takes 100% (asked {spec['traffic_percent']}%)")
    machine = spec["machine_spec"]
    deployed = types.DeployedModel(
        id=deployed_id,
        model=spec["model"],
        display_name=spec["display_name"],
        dedicated_resources=types.DedicatedResources(
            machine_spec=types.MachineSpec(
                machine_type=machine["machine_type"],
                accelerator_type=machine.get("accelerator_type") or "ACCELERATOR_TYPE_UNSPECIFIED",
                accelerator_count=machine["accelerator_count"],
            ),
            min_replica_count=spec["min_replica_count"],
            max_replica_count=spec["max_replica_count"],
        ),
        service_account=spec.get("service_account") or "",
    )
    # In a deployModel request, "0" stands for the model being deployed.
    request_split = {("0" if k == deployed_id else k): v for k, v in split.items()}
    what = f"deploy {spec['model']} as {deployed_id}"
    log(f"{what} on {spec['endpoint']} ({machine['machine_type']}, replicas "
        f"{spec['min_replica_count']}-{spec['max_replica_count']}, traffic {split})")
    wait(
        c.endpoints.deploy_model(
            endpoint=spec["endpoint"], deployed_model=deployed, traffic_split=request_split
        ),
        what,
    )


def undeploy(spec: dict, c: Clients | None = None) -> bool:
    """Undeploy; its traffic moves to whatever else serves on the endpoint."""
    c = c or clients(spec["region"])
    endpoint = _get(c.endpoints.get_endpoint, spec["endpoint"])
    deployed_id = spec["deployed_model_id"]
    if endpoint is None or not any(d.id == deployed_id for d in endpoint.deployed_models):
        log(f"{deployed_id} is not deployed on {spec['endpoint']}; nothing to undeploy")
        return False
    split = split_without(dict(endpoint.traffic_split), deployed_id)
    what = f"undeploy {deployed_id}"
    log(f"{what} from {spec['endpoint']} (traffic after: {split or 'none'})")
    wait(
        c.endpoints.undeploy_model(
            endpoint=spec["endpoint"], deployed_model_id=deployed_id, traffic_split=split
        ),
        what,
    )
    return True


def traffic(spec: dict, c: Clients | None = None) -> None:
    """Bring the endpoint to the declared traffic split and replica bounds.

    Deployments of this model that the config no longer declares (the artifact a
    promotion replaced) are undeployed here, after the split has moved off them, and
    their model versions deleted when nothing else serves them."""
    from google.cloud.aiplatform_v1 import types
    from google.protobuf import field_mask_pb2

    c = c or clients(spec["region"])
    endpoint = _endpoint(c, spec)
    deployed = {d.id: d for d in endpoint.deployed_models}
    missing = sorted(set(spec["split"]) - set(deployed))
    if missing:
        raise RuntimeError(
            f"{', '.join(missing)} not deployed on {spec['endpoint']}; re-apply the deployment stack"
        )

    bounds = (spec["min_replica_count"], spec["max_replica_count"])
    for deployed_id in sorted(spec["split"]):
        resources = deployed[deployed_id].dedicated_resources
        if (resources.min_replica_count, resources.max_replica_count) == bounds:
            continue
        mutated = types.DeployedModel(
            id=deployed_id,
            dedicated_resources=types.DedicatedResources(
                machine_spec=resources.machine_spec, min_replica_count=bounds[0], max_replica_count=bounds[1]
            ),
        )
        wait(
            c.endpoints.mutate_deployed_model(
                endpoint=spec["endpoint"],
                deployed_model=mutated,
                update_mask=field_mask_pb2.FieldMask(
                    paths=["dedicated_resources.min_replica_count", "dedicated_resources.max_replica_count"]
                ),
            ),
            f"set replicas of {deployed_id} to {bounds[0]}-{bounds[1]}",
        )

    current = {k: v for k, v in endpoint.traffic_split.items() if v}
    wanted = {k: v for k, v in spec["split"].items() if v}
    if current != wanted:
        log(f"traffic split on {spec['endpoint']}: {current} -> {wanted}")
        endpoint.traffic_split = {**{k: 0 for k in deployed}, **spec["split"]}
        c.endpoints.update_endpoint(
            endpoint=endpoint, update_mask=field_mask_pb2.FieldMask(paths=["traffic_split"])
        )
    else:
        log(f"traffic split on {spec['endpoint']} is already {wanted}")

    for old_id, old in sorted(deployed.items()):
        if old_id in spec["split"] or not _of_model(old, spec["model_name"]):
            continue
        undeploy({**spec, "deployed_model_id": old_id}, c)
        version = f"{old.model}@{old.model_version_id}" if old.model_version_id else old.model
        superseded = _get(c.models.get_model, version)
        if superseded is not None and not superseded.deployed_models and not _declared(superseded, spec["models"]):
            _delete_version(c, superseded)


def _of_model(deployed, model_name: str) -> bool:
    """Is this deployment one of our model's versions (model IDs are `<name>-<sha[:12]>`)?"""
    return f"/models/{model_name}-" in deployed.model


def _declared(model, declared: list[str]) -> bool:
    """Is this model version one the config still declares (by ID@alias)?"""
    return any(
        name.split("@")[0] == model.name and name.split("@")[1] in model.version_aliases for name in declared
    )


def release(spec: dict, c: Clients | None = None) -> int:
    """Undeploy every deployment of this model from the endpoint (destroying the stack)."""
    c = c or clients(spec["region"])
    endpoint = _get(c.endpoints.get_endpoint, spec["endpoint"])
    if endpoint is None:
        log(f"{spec['endpoint']} does not exist; nothing to undeploy")
        return 0
    ours = [d.id for d in endpoint.deployed_models if _of_model(d, spec["model_name"])]
    # Smallest share first, so whatever still serves keeps traffic until the end.
    split = dict(endpoint.traffic_split)
    for deployed_id in sorted(ours, key=lambda k: (split.get(k, 0), k)):
        undeploy({**spec, "deployed_model_id": deployed_id}, c)
    if not ours:
        log(f"nothing of {spec['model_name']} is deployed on {spec['endpoint']}")
    return len(ours)


HOOKS = {
    "model-upload": model_upload,
    "model-delete": model_delete,
    "deploy": deploy,
    "undeploy": undeploy,
    "traffic": traffic,
    "release": release,
}
