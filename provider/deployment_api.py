"""State <-> REST JSON for `eevertex_deployment` (provider/deployment.py): the DeployedModel message
Vertex AI takes and answers with (endpoint.py DeployedModel, machine_resources.py DedicatedResources),
the attribute <-> API field tables (MutateDeployedModel updateMask paths, error field names), the
autoscaling metric specs, and the traffic split an undeploy leaves behind.
"""

from __future__ import annotations

from tf.iface import State

from config import rules
from provider.common import known, with_project

# attribute -> machine_resources.py AutoscalingMetricSpec.metric_name (config/rules.py)
METRICS = {key: metric for metric, key in rules.AUTOSCALING_METRICS.items()}
# machine_resources.py DedicatedResources.autoscaling_metric_specs: CPU utilization always counts,
# the accelerator duty cycle when accelerator_count > 0; both default to a target of 60.
DEFAULT_TARGET = rules.DEFAULT_AUTOSCALING_TARGET
MUTABLE = {  # attribute -> MutateDeployedModel updateMask path
    "min_replica_count": "dedicatedResources.minReplicaCount",
    "max_replica_count": "dedicatedResources.maxReplicaCount",
    "required_replica_count": "dedicatedResources.requiredReplicaCount",
    **{key: "dedicatedResources.autoscalingMetricSpecs" for key in METRICS},
    "disable_container_logging": "disableContainerLogging",
}
FIELDS = {
    "machineType": "machine_type",
    "machine_type": "machine_type",
    "acceleratorType": "accelerator_type",
    "acceleratorCount": "accelerator_count",
    "minReplicaCount": "min_replica_count",
    "maxReplicaCount": "max_replica_count",
    "autoscalingMetricSpecs": "autoscaling_cpu_utilization_target",
    "serviceAccount": "service_account",
    "spot": "spot",
    "requiredReplicaCount": "required_replica_count",
    "disableContainerLogging": "disable_container_logging",
    "enableAccessLogging": "enable_access_logging",
    "deployedModel.id": "deployed_model_id",
    "deployedModelId": "deployed_model_id",
    "trafficSplit": "deployed_model_id",
    "artifactUri": "model",
    "modelVersionId": "model",
    "sharedResources": "shared_resources",
    "shared_resources": "shared_resources",
}


def endpoint_name(state: State) -> str:
    return f"projects/{state['project']}/locations/{state['region']}/endpoints/{state['endpoint_id']}"


# What a deployment in a shared pool may not set: the pool's dedicated_resources decide them
# (endpoint.py DeployedModel.prediction_resources is a oneof).
DEDICATED_ONLY = (
    "machine_type",
    "accelerator_type",
    "accelerator_count",
    "spot",
    "min_replica_count",
    "max_replica_count",
    "required_replica_count",
    *METRICS,
)


def to_api(state: State) -> dict:
    if known(state.get("shared_resources")) and state.get("shared_resources"):
        deployed: dict = {
            "id": state["deployed_model_id"],
            "model": state["model"],
            "sharedResources": state["shared_resources"],
        }
        return _common_to_api(state, deployed)
    machine: dict = {"machineType": state["machine_type"]}
    if state.get("accelerator_type"):
        machine["acceleratorType"] = state["accelerator_type"]
    if known(state.get("accelerator_count")) and state["accelerator_count"]:
        machine["acceleratorCount"] = int(state["accelerator_count"])
    resources: dict = {
        "machineSpec": machine,
        "minReplicaCount": int(state["min_replica_count"]),
        "maxReplicaCount": int(state["max_replica_count"]),
    }
    specs = _metric_specs(state)
    if specs:
        resources["autoscalingMetricSpecs"] = specs
    if state.get("spot"):
        resources["spot"] = True
    if known(state.get("required_replica_count")) and state["required_replica_count"]:
        resources["requiredReplicaCount"] = int(state["required_replica_count"])
    dedicated: dict = {"id": state["deployed_model_id"], "model": state["model"], "dedicatedResources": resources}
    return _common_to_api(state, dedicated)


def _common_to_api(state: State, deployed: dict) -> dict:
    if known(state.get("display_name")) and state["display_name"]:
        deployed["displayName"] = state["display_name"]
    if known(state.get("service_account")) and state["service_account"]:
        deployed["serviceAccount"] = state["service_account"]
    for key, api in (
        ("disable_container_logging", "disableContainerLogging"),
        ("enable_access_logging", "enableAccessLogging"),
    ):
        if known(state.get(key)):
            deployed[api] = bool(state[key])
    return deployed


def _metric_specs(state: State) -> list[dict]:
    return [
        {"metricName": metric, "target": int(state[key])} for key, metric in METRICS.items() if known(state.get(key))
    ]


def from_api(deployed: dict, prior: State, model: str) -> State:
    """State from the endpoint's DeployedModel; `model` is the model version name to record
    (the configured spelling while it names the deployed version: see Deployment._model)."""
    if deployed.get("sharedResources"):
        return _shared_from_api(deployed, prior, model)
    resources = deployed.get("dedicatedResources") or {}
    machine = resources.get("machineSpec") or {}
    targets = {
        spec.get("metricName"): spec.get("target", DEFAULT_TARGET)
        for spec in resources.get("autoscalingMetricSpecs") or []
    }
    accelerators = int(machine.get("acceleratorCount") or 0)
    state = {
        "project": prior["project"],
        "region": prior["region"],
        "endpoint_id": prior["endpoint_id"],
        "model": model,
        "deployed_model_id": deployed["id"],
        "display_name": deployed.get("displayName") or None,
        "machine_type": machine.get("machineType", ""),
        "accelerator_type": machine.get("acceleratorType") or None,
        "accelerator_count": accelerators or (0 if prior.get("accelerator_count") == 0 else None),
        "spot": bool(resources.get("spot")) or (False if prior.get("spot") is False else None),
        "min_replica_count": int(resources.get("minReplicaCount") or 0),
        "max_replica_count": int(resources.get("maxReplicaCount") or resources.get("minReplicaCount") or 0),
        "required_replica_count": _int(resources.get("requiredReplicaCount") or None),
        "autoscaling_cpu_utilization_target": int(
            targets.get(METRICS["autoscaling_cpu_utilization_target"], DEFAULT_TARGET)
        ),
        "autoscaling_accelerator_duty_cycle_target": _int(
            targets.get(METRICS["autoscaling_accelerator_duty_cycle_target"], DEFAULT_TARGET if accelerators else None)
        ),
        "autoscaling_request_count_per_minute_target": _int(
            targets.get(METRICS["autoscaling_request_count_per_minute_target"])
        ),
        "service_account": deployed.get("serviceAccount") or None,
        "disable_container_logging": bool(deployed.get("disableContainerLogging")),
        "enable_access_logging": bool(deployed.get("enableAccessLogging")),
        "model_version_id": deployed.get("modelVersionId") or None,
        "shared_resources": None,
    }
    state["id"] = f"{endpoint_name(state)}/deployedModels/{state['deployed_model_id']}"
    return state


def _shared_from_api(deployed: dict, prior: State, model: str) -> State:
    state: dict = {key: None for key in DEDICATED_ONLY}
    state.update(
        {
            "project": prior["project"],
            "region": prior["region"],
            "endpoint_id": prior["endpoint_id"],
            "model": model,
            "deployed_model_id": deployed["id"],
            "display_name": deployed.get("displayName") or None,
            "shared_resources": with_project(deployed["sharedResources"], prior["project"]),
            "service_account": deployed.get("serviceAccount") or None,
            "disable_container_logging": bool(deployed.get("disableContainerLogging")),
            "enable_access_logging": bool(deployed.get("enableAccessLogging")),
            "model_version_id": deployed.get("modelVersionId") or None,
        }
    )
    state["id"] = f"{endpoint_name(state)}/deployedModels/{state['deployed_model_id']}"
    return state


def _int(value):
    return None if value is None else int(value)


def deploy_body(planned: State, endpoint: dict) -> dict:
    """The DeployModel request for `planned` on `endpoint` (its GetEndpoint answer)."""
    body: dict = {"deployedModel": to_api(planned)}
    others = [d for d in endpoint.get("deployedModels") or []]
    split = {k: int(v) for k, v in (endpoint.get("trafficSplit") or {}).items()}
    if not others:
        # The only deployment must take all traffic (an endpoint with deployed models has
        # a split summing to 100); eevertex_traffic_split sets the exact split.
        body["trafficSplit"] = {"0": 100}
    elif sum(split.values()) == 100:
        # Keep the current split; the new deployment starts at 0%.
        body["trafficSplit"] = {**split, "0": 0}
    return body


def mutate_body(current: State, planned: State, mask: list[str]) -> dict:
    """The MutateDeployedModel request setting the `mask` paths (MUTABLE's values) as planned."""
    full = to_api(planned)
    deployed: dict = {"id": current["deployed_model_id"], "dedicatedResources": {}}
    if current.get("shared_resources"):
        del deployed["dedicatedResources"]  # the oneof: a pool's deployment has none
    for path in mask:
        # A field left out of the body is cleared (no metric specs, no required count).
        section, _, field = path.rpartition(".")
        if section and field in full[section]:
            deployed[section][field] = full[section][field]
        elif not section:
            deployed[field] = full[field]
    return {"deployedModel": deployed, "updateMask": ",".join(mask)}


def undeploy_body(endpoint: dict, me: str) -> dict:
    """The UndeployModel request taking deployed model `me` off `endpoint` (its GetEndpoint
    answer): its traffic share, if any, goes to the others (redistribute)."""
    rest = [d["id"] for d in endpoint.get("deployedModels") or [] if d["id"] != me]
    split = {k: int(v) for k, v in (endpoint.get("trafficSplit") or {}).items()}
    body: dict = {"deployedModelId": me}
    if rest and split.get(me):
        body["trafficSplit"] = redistribute(split, me, rest)
    return body


def redistribute(split: dict[str, int], leaving: str, rest: list[str]) -> dict[str, int]:
    """The split without `leaving`, its share given to `rest` in proportion to what they hold
    (evenly when they hold nothing); whole percents summing to 100 (largest remainder)."""
    kept = {k: split.get(k, 0) for k in rest}
    total = sum(kept.values())
    weights = kept if total else {k: 1 for k in rest}
    wsum = sum(weights.values())
    exact = {k: 100 * weights[k] / wsum for k in rest}
    result = {k: int(v) for k, v in exact.items()}
    for k in sorted(rest, key=lambda k: (-(exact[k] - result[k]), k))[: 100 - sum(result.values())]:
        result[k] += 1
    return result
