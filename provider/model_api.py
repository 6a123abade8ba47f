"""State <-> REST JSON for `eevertex_model` (provider/model.py): the Model message an upload sends
and GetModel answers with (model.py Model, ModelContainerSpec, Probe), the API field names error
messages use, and the formats Vertex AI gives its values (version aliases, durations, int64 strings).
"""

from __future__ import annotations

import re

from tf.iface import State

from provider.common import empty_like, known

# model_service.py MergeVersionAliasesRequest.version_aliases (also Model.version_aliases)
ALIAS = re.compile(r"[a-z][a-zA-Z0-9-]{0,126}[a-z0-9-]")
# model.py ModelContainerSpec.ports: "If you do not specify this field, it defaults to
# following value: [{containerPort: 8080}]"
DEFAULT_PORTS = [8080]

# API field (as error messages name it) -> our attribute
FIELDS = {
    "artifactUri": "artifact_uri",
    "artifact_uri": "artifact_uri",
    "imageUri": "container_image_uri",
    "image_uri": "container_image_uri",
    "grpcPorts": "container_grpc_ports",
    "grpc_ports": "container_grpc_ports",
    "ports": "container_ports",
    "predictRoute": "container_predict_route",
    "healthRoute": "container_health_route",
    "env": "container_env",
    "command": "container_command",
    "args": "container_args",
    "deploymentTimeout": "container_deployment_timeout_seconds",
    "sharedMemorySizeMb": "container_shared_memory_size_mb",
    "startupProbe": "container_startup_probe_exec",
    "healthProbe": "container_health_probe_exec",
    "kmsKeyName": "kms_key_name",
    "encryptionSpec": "kms_key_name",
    "versionAliases": "version_alias",
    "displayName": "display_name",
    "description": "description",
    "labels": "labels",
    "modelId": "model_id",
    "parentModel": "model_id",
}
_PROBES = ("startup", "health")


def model_name(state: State) -> str:
    return f"projects/{state['project']}/locations/{state['region']}/models/{state['model_id']}"


def _seconds(duration: str | None) -> float | int | None:
    """A google.protobuf.Duration in JSON ("600s", "1.5s") as a number of seconds."""
    if not duration:
        return None
    value = float(str(duration).rstrip("s"))
    return int(value) if value.is_integer() else value


def _number(value):
    """int64 fields arrive as JSON strings."""
    return None if value in (None, "") else int(value)


def _alias(prior, aliases: list[str]) -> str:
    """Our alias while the version holds it; else (drift, import) its first alias other than
    `default`, or ""."""
    if known(prior) and prior in aliases:
        return prior
    return next((a for a in aliases if a != "default"), "")


def to_api(state: State) -> dict:
    """The Model message of an upload."""
    container: dict = {"imageUri": state["container_image_uri"]}
    if state.get("container_command"):
        container["command"] = list(state["container_command"])
    if state.get("container_args"):
        container["args"] = list(state["container_args"])
    if state.get("container_env"):
        container["env"] = [{"name": k, "value": v} for k, v in sorted(state["container_env"].items())]
    if known(state.get("container_ports")) and state["container_ports"]:
        container["ports"] = [{"containerPort": int(p)} for p in state["container_ports"]]
    if state.get("container_grpc_ports"):
        container["grpcPorts"] = [{"containerPort": int(p)} for p in state["container_grpc_ports"]]
    for key, api in (("container_predict_route", "predictRoute"), ("container_health_route", "healthRoute")):
        if state.get(key):
            container[api] = state[key]
    if known(state.get("container_deployment_timeout_seconds")):
        container["deploymentTimeout"] = f"{state['container_deployment_timeout_seconds']}s"
    if known(state.get("container_shared_memory_size_mb")):
        container["sharedMemorySizeMb"] = str(int(state["container_shared_memory_size_mb"]))
    for probe in _PROBES:
        spec: dict = {}
        if state.get(f"container_{probe}_probe_exec"):
            spec["exec"] = {"command": list(state[f"container_{probe}_probe_exec"])}
        for key, api in (("period_seconds", "periodSeconds"), ("timeout_seconds", "timeoutSeconds")):
            if known(state.get(f"container_{probe}_probe_{key}")):
                spec[api] = int(state[f"container_{probe}_probe_{key}"])
        if spec:
            container[f"{probe}Probe"] = spec
    model: dict = {
        "displayName": state["display_name"],
        "artifactUri": state["artifact_uri"],
        "containerSpec": container,
        "versionAliases": [state["version_alias"]],
    }
    if state.get("description"):
        model["description"] = state["description"]
    if state.get("labels"):
        model["labels"] = dict(state["labels"])
    if state.get("kms_key_name"):
        model["encryptionSpec"] = {"kmsKeyName": state["kms_key_name"]}
    return model


def from_api(version: dict, prior: State) -> State:
    """State from a GetModel answer; `prior` supplies the names the caller used and how it wrote
    empty values (absent == empty)."""
    container = version.get("containerSpec") or {}
    env = {e["name"]: e.get("value", "") for e in container.get("env") or []}
    state = {
        "project": prior["project"],
        "region": prior["region"],
        "model_id": prior["model_id"],
        "version_alias": _alias(prior.get("version_alias"), version.get("versionAliases") or []),
        "display_name": version.get("displayName", ""),
        "description": empty_like(prior.get("description"), version.get("description")),
        "labels": empty_like(prior.get("labels"), version.get("labels")),
        "artifact_uri": version.get("artifactUri", ""),
        "container_image_uri": container.get("imageUri", ""),
        "container_command": empty_like(prior.get("container_command"), container.get("command")),
        "container_args": empty_like(prior.get("container_args"), container.get("args")),
        "container_env": empty_like(prior.get("container_env"), env),
        "container_ports": [int(p["containerPort"]) for p in container.get("ports") or []] or DEFAULT_PORTS,
        "container_grpc_ports": empty_like(
            prior.get("container_grpc_ports"), [int(p["containerPort"]) for p in container.get("grpcPorts") or []]
        ),
        "container_predict_route": container.get("predictRoute") or None,
        "container_health_route": container.get("healthRoute") or None,
        "container_deployment_timeout_seconds": _seconds(container.get("deploymentTimeout")),
        "container_shared_memory_size_mb": _number(container.get("sharedMemorySizeMb")),
        "kms_key_name": (version.get("encryptionSpec") or {}).get("kmsKeyName") or None,
        "version_id": version["versionId"],
        "version_aliases": sorted(version.get("versionAliases") or []),
    }
    for probe in _PROBES:
        spec = container.get(f"{probe}Probe") or {}
        state[f"container_{probe}_probe_exec"] = empty_like(
            prior.get(f"container_{probe}_probe_exec"), (spec.get("exec") or {}).get("command")
        )
        state[f"container_{probe}_probe_period_seconds"] = _number(spec.get("periodSeconds"))
        state[f"container_{probe}_probe_timeout_seconds"] = _number(spec.get("timeoutSeconds"))
    # A trailing slash is the same folder.
    if known(prior.get("artifact_uri")) and prior["artifact_uri"].rstrip("/") == state["artifact_uri"].rstrip("/"):
        state["artifact_uri"] = prior["artifact_uri"]
    state["model_name"] = model_name(state)
    state["id"] = f"{state['model_name']}@{state['version_id']}"
    return state


def model_update(planned: State, version: dict) -> dict:
    """UpdateModel's body for the model-level fields (shared by all versions) that `version` (a
    GetModel answer) holds otherwise than planned; its keys, in order, are the updateMask."""
    wanted = {"displayName": planned["display_name"], "description": planned.get("description") or ""}
    held = {"displayName": version.get("displayName", ""), "description": version.get("description") or ""}
    return {key: value for key, value in wanted.items() if held[key] != value}


def deployed_names(deployed: list[dict]) -> str:
    """Model.deployedModels (DeployedModelRef) as `ENDPOINT/deployedModels/ID`, comma-separated."""
    return ", ".join(f"{d.get('endpoint')}/deployedModels/{d.get('deployedModelId')}" for d in deployed)
