"""A local Vertex AI (REST, v1 and v1beta1) for rehearsals: what our stacks, the gcloud CLI
and Earth Engine use of it, as strict as the API is.

`python -m rehearsal.vertex_emulator --port P --data-dir D [--storage http://127.0.0.1:S]
[--project-numbers] [--no-serving] [--registries-conf FILE]`

- models: upload (new model, or a new version with `parentModel`), get (`M`, `M@versionId`,
  `M@alias`), list, listVersions, patch (updateMask), mergeVersionAliases, delete,
  deleteVersion; endpoints: create, get, list, patch (updateMask), delete, deployModel,
  undeployModel, mutateDeployedModel, predict (routed by the traffic split);
  deploymentResourcePools: create, get, list, queryDeployedModels, delete; operations:
  get, under `/v1`, `/v1beta1` and `/ui`, as the clients poll them.
- `/emulator/faults` (POST {"deployModel": "fail_after_serving"}) injects a deploy that dies
  half-way; `/emulator/calls` counts mutating calls, `/emulator/journal` lists them in
  order; `/emulator/traffic` lists, after every change of an endpoint, which deployed models
  take its traffic (an empty list: an instant when nothing served); `/emulator/state` is the
  whole state (see `rehearsal.gcloud.parity`).
- `--project-numbers` (or EEV_EMULATOR_PROJECT_NUMBERS=1): resource names in responses carry
  the project number, as Vertex AI returns them (`projects/123456789012/...`, a stable
  number per project ID); requests may use either. Off by default: the rehearsal compares
  names by project ID.
- `--no-serving` (or EEV_EMULATOR_SERVE=0): deployModel checks the artifact is in the bucket
  but starts no model server; predict answers 503 UNAVAILABLE.

Deployed models really serve. A model on one of our images runs that image, pulled by digest
(`--registries-conf`: a loopback registry standing in for Artifact Registry), with the
AIP_* variables set and AIP_STORAGE_URI a copy of the artifact in an emulator-managed
bucket, which the container downloads itself. The Vertex AI prebuilt images cannot run
here: for them a model.mar runs in TorchServe, a SavedModel in our TensorFlow Serving
stand-in. State lives in `<data-dir>/state.json`; after a restart, deployed models are
served again.

Rules it enforces, each from a primary source. Sources: [types] = the field docs in
google-cloud-aiplatform's `google/cloud/aiplatform_v1/types/<file>.py` (the same text is in
gcloud 528's `googlecloudsdk/generated_clients/apis/aiplatform/v1/aiplatform_v1_messages.py`);
[client] = `aiplatform_v1/services/<service>/client.py` method docs; [sdk] =
`google/cloud/aiplatform/models.py`; [code] = `google/rpc/code.proto` (HTTP mapping of
each canonical code); [gcloud] = gcloud 528's `googlecloudsdk/...` sources. Tests are in
tests/test_vertex_emulator.py unless named.

| rule | source | test |
|---|---|---|
| endpointId: `[1-9][0-9]{0,8}` (numeric: at most 9 digits, no leading zero) or `[a-z]`, up to 63 of `[a-z0-9-]`, last a letter or digit; else 400 INVALID_ARGUMENT | [types] endpoint_service.py CreateEndpointRequest.endpoint_id | test_endpoint_id_rule |
| endpointId, modelId, deployedModel.id not given: generated, 19 digits | [types] same fields ("Vertex AI will generate a value"); the length is what Vertex AI's generated IDs have (not documented) | test_generated_ids |
| modelId: up to 63 of `[a-z0-9_-]`, first not a digit or `-` (a leading `_` is valid) | [types] model_service.py UploadModelRequest.model_id | test_model_id_rule |
| deployedModel.id: 1-10 of `[0-9]`, unique on the endpoint (409 ALREADY_EXISTS) | [types] endpoint.py DeployedModel.id | test_deployed_model_id_rule |
| versionAliases: `[a-z][a-zA-Z0-9-]{0,126}[a-z0-9]`, unique in the model; the first version gets `default`; an upload with `default` moves it to the new version | [types] model.py Model.version_aliases; [sdk] ModelRegistry._get_true_alias_list | test_version_aliases |
| models.get `M@versionId` / `M@alias`; no suffix = the `default` version | [types] model_service.py GetModelRequest.name | test_version_aliases |
| Model output-only fields: name, versionId, versionAliases, versionCreateTime, versionUpdateTime, createTime, updateTime, etag, deployedModels, supportedDeploymentResourcesTypes (`DEDICATED_RESOURCES`, `SHARED_RESOURCES`: gcloud's deploy-model reads it and takes the first that is not shared), supportedInput/OutputStorageFormats, modelSourceInfo (values for a custom-container model: not settled by a doc) | [types] model.py Model; [gcloud] api_lib/ai/endpoints/client.py _GetModelDeploymentResourceType | test_model_output_fields, rehearsal.gcloud |
| deleteVersion: name must carry a version ID (an alias is 400 INVALID_ARGUMENT); the `default` version, a deployed version or the only version: 400 FAILED_PRECONDITION | [types] model_service.py DeleteModelVersionRequest.name; model.py version_aliases ("exactly one default"); [client] ModelService.delete_model_version | test_delete_default_version_refused |
| deleteModel while any version is deployed: 400 FAILED_PRECONDITION | [client] ModelService.delete_model | test_delete_deployed_model_refused |
| mergeVersionAliases: name carries a version ID; `-x` removes, an alias held elsewhere moves; removing `default` refused; alias `[a-z][a-zA-Z0-9-]{0,126}[a-z-0-9]` | [types] model_service.py MergeVersionAliasesRequest | test_merge_version_aliases |
| models.patch: updateMask required; `M`/`M@-` updates displayName, description, labels; `M@V` updates versionDescription, labels; mixing is 400 FAILED_PRECONDITION; other paths 400 | [types] model_service.py UpdateModelRequest | test_update_model_mask |
| endpoints.patch: updateMask required (displayName, description, labels, trafficSplit, predictRequestResponseLoggingConfig; snake or camel case) | [types] endpoint_service.py UpdateEndpointRequest | test_update_endpoint_mask |
| trafficSplit: keys are deployed-model IDs, values 0-100 summing to 100, or empty | [types] endpoint.py Endpoint.traffic_split | test_split_must_sum_to_100 |
| deployModel: `"0"` names the model being deployed; an empty trafficSplit leaves the endpoint's split as it is (the new model gets no traffic) | [types] endpoint_service.py DeployModelRequest.traffic_split, .deployed_model | test_deploy_without_split_gets_no_traffic |
| deployModel: dedicatedResources or sharedResources, one of them (a oneof), never automaticResources; machineSpec.machineType defaults to n1-standard-2; minReplicaCount >= 1; maxReplicaCount defaults to minReplicaCount and is >= it | [types] machine_resources.py DedicatedResources; endpoint.py DeployedModel.prediction_resources; model.py supported_deployment_resources_types | test_deploy_resources_rules |
| sharedResources: an existing pool in the endpoint's project and location, for a model on a Vertex AI prebuilt TensorFlow or PyTorch image ("custom containers are not supported"); its deployments mutate only disableContainerLogging | [types] endpoint.py DeployedModel.shared_resources; model co-hosting doc (CO_HOSTING_DOC) | test_shared_pool_rules |
| deploymentResourcePools: create (an operation) with deploymentResourcePoolId `[a-z]([a-z0-9-]{0,61}[a-z0-9])?` and dedicatedResources.machineSpec; get, list, queryDeployedModels, delete (refused while models are deployed in it) | [types] deployment_resource_pool_service.py, deployment_resource_pool.py | test_shared_pool_rules |
| predictRequestResponseLoggingConfig (create, or patch with its mask path): samplingRate in (0, 1]; outputUri `bq://project[.dataset[.table]]`, at most 2000 characters; the dataset must exist and the table must not; Vertex AI creates the table | [types] endpoint.py PredictRequestResponseLoggingConfig, io.py BigQueryDestination | test_request_response_logging_rules |
| undeployModel: a model that still has traffic is undeployed only if trafficSplit unassigns it; the last one leaves the split empty | [types] endpoint_service.py UndeployModelRequest.traffic_split | test_undeploy_with_traffic_refused |
| mutateDeployedModel: updateMask required; only min/max/requiredReplicaCount, autoscalingMetricSpecs, disableContainerLogging (not spot, machineSpec, enableAccessLogging) | [types] endpoint_service.py MutateDeployedModelRequest | test_mutate_mask |
| deployModel and mutateDeployedModel: autoscalingMetricSpecs metricName one of `.../prediction/online/cpu/utilization`, `.../accelerator/duty_cycle`, `.../request_count`, at most one per metric; target 1-100 for the two utilizations (absent: 60), >= 1 requests per minute for request_count; the duty cycle only with acceleratorCount > 0 (not documented as refused: refused here); requiredReplicaCount 0 to minReplicaCount (above it not documented as refused: refused here); spot, disableContainerLogging, enableAccessLogging are bools; false/0 left out of what is read back (proto3 JSON) | [types] machine_resources.py DedicatedResources, AutoscalingMetricSpec; endpoint.py DeployedModel | test_dedicated_resources_rules |
| deleteEndpoint with deployed models: 400 FAILED_PRECONDITION | [sdk] Endpoint.delete(force=...) ("undeployed first") | test_delete_endpoint_with_models_refused |
| predict body over 1.5 MB (1,500,000 bytes): 400 INVALID_ARGUMENT | Vertex AI quotas (public endpoint: 1.5 MB); Earth Engine `maxPayloadBytes` default 1,500,000 (shared/EARTH_ENGINE.md) | test_predict_over_1_5_mb_refused |
| predict response: predictions, deployedModelId, model, modelVersionId, modelDisplayName | [types] prediction_service.py PredictResponse | rehearsal.scenario, rehearsal.gcloud |
| errors: `{"error": {"code": HTTP, "message", "status": CANONICAL}}`; FAILED_PRECONDITION and INVALID_ARGUMENT are HTTP 400, NOT_FOUND 404, ALREADY_EXISTS 409, UNAVAILABLE 503; a failed operation carries `error: {code: <canonical number>, message}` | [code]; google.rpc.Status | test_error_shape |
| long-running operations: `<resource>/operations/<19 digits>`, metadata `<Kind>OperationMetadata` with genericMetadata; response `@type` in the version polled (v1 or v1beta1); gcloud polls v1beta1 | [types] operation.py GenericOperationMetadata, endpoint_service.py, model_service.py; [gcloud] api_lib/ai/operations.py (OperationsClient defaults to v1beta1) | test_operations_v1_and_v1beta1, rehearsal.gcloud |
| deployModel of a model on a container image that is not a prebuilt one: the image runs, pulled by `containerSpec.imageUri`, with AIP_HTTP_PORT, AIP_HEALTH_ROUTE / AIP_PREDICT_ROUTE (`containerSpec.healthRoute`/`predictRoute`, else `/v1/endpoints/E/deployedModels/D` and `...:predict`), AIP_STORAGE_URI (a copy of `artifactUri` in a bucket the emulator manages, not `artifactUri` itself), AIP_DEPLOYED_MODEL_ID, AIP_ENDPOINT_ID, AIP_MODE=PREDICTION, `containerSpec.env`; the deployment is done once the health route answers 200, a container that exits first fails it; predict posts the body to the predict route and adds deployedModelId | "Custom container requirements for prediction" (AIP_* variables, model artifacts, health checks); [types] model.py ModelContainerSpec | rehearsal.scenario, rehearsal.gcloud |
| resource names carry the project number (`--project-numbers`) | observed API behaviour (every Vertex AI resource name is `projects/<number>/...`) | test_project_numbers |
"""

from __future__ import annotations

import argparse
import collections
import copy
import datetime
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from config.images import prebuilt
from rehearsal.bigquery_api import BigQueryApi
from rehearsal.monitoring_api import MonitoringApi
from rehearsal.registry_api import RegistryApi, project_number
from serving.local import Container, TorchServe, free_port, http_json, send_json

# google.rpc.Code: canonical code -> (number, HTTP status), from google/rpc/code.proto.
CODES = {
    "INVALID_ARGUMENT": (3, 400),
    "FAILED_PRECONDITION": (9, 400),
    "OUT_OF_RANGE": (11, 400),
    "PERMISSION_DENIED": (7, 403),
    "NOT_FOUND": (5, 404),
    "ALREADY_EXISTS": (6, 409),
    "ABORTED": (10, 409),
    "RESOURCE_EXHAUSTED": (8, 429),
    "INTERNAL": (13, 500),
    "UNIMPLEMENTED": (12, 501),
    "UNAVAILABLE": (14, 503),
}

ENDPOINT_ID = re.compile(r"[1-9][0-9]{0,8}|[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?")
MODEL_ID = re.compile(r"[a-z_][a-z0-9_-]{0,62}")
DEPLOYED_MODEL_ID = re.compile(r"[0-9]{1,10}")
VERSION_ALIAS = re.compile(r"[a-z][a-zA-Z0-9-]{0,126}[a-z0-9]")
MERGE_ALIAS = re.compile(r"[a-z][a-zA-Z0-9-]{0,126}[a-z0-9-]")
PREDICT_LIMIT = 1_500_000
# Where the emulator keeps its copies of model artifacts (AIP_STORAGE_URI).
MANAGED_BUCKET = "vertex-emulator-managed-artifacts"
DEFAULT_MACHINE_TYPE = "n1-standard-2"
LOCATION = r"projects/[^/]+/locations/[^/]+"
# What Vertex AI lists for a model uploaded with a custom container spec.
DEPLOYMENT_TYPES = ["DEDICATED_RESOURCES", "SHARED_RESOURCES"]
INPUT_FORMATS = ["jsonl", "bigquery", "csv", "tf-record", "tf-record-gzip", "file-list"]
OUTPUT_FORMATS = ["jsonl", "bigquery"]
MUTABLE_DEPLOYED = {
    "dedicated_resources.min_replica_count", "dedicated_resources.max_replica_count",
    "dedicated_resources.required_replica_count", "dedicated_resources.autoscaling_metric_specs",
    "disable_container_logging",
}
POOL_ID = re.compile(r"[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?")
BQ_URI = re.compile(r"bq://([a-z][a-z0-9-]{4,28}[a-z0-9])(?:\.([A-Za-z0-9_]{1,1024})(?:\.([A-Za-z0-9_]{1,1024}))?)?")
CO_HOSTING_DOC = "https://cloud.google.com/vertex-ai/docs/predictions/model-co-hosting"
# The columns of the table request-response logging writes (Vertex AI, "Online inference logging").
LOGGING_SCHEMA = [{"name": n, "type": t} for n, t in (
    ("endpoint", "STRING"), ("deployed_model_id", "STRING"), ("logging_time", "TIMESTAMP"),
    ("request_id", "NUMERIC"), ("request_payload", "STRING"), ("response_payload", "STRING"))]
# [types] machine_resources.py AutoscalingMetricSpec.metric_name: the supported metrics for
# online prediction; the first two are utilizations in percent ("1% - 100%").
AUTOSCALING_METRICS = (
    "aiplatform.googleapis.com/prediction/online/cpu/utilization",
    "aiplatform.googleapis.com/prediction/online/accelerator/duty_cycle",
    "aiplatform.googleapis.com/prediction/online/request_count",
)
# Proto3 JSON leaves out fields at their default; a DeployedModel read back has none of these
# when they are false or 0.
DEFAULT_VALUED = {"spot": False, "requiredReplicaCount": 0}
SPLIT_SUMMARY = "allowed: deployed-model IDs of this endpoint, each 0-100, summing to 100 (or an empty map)"


class ApiError(Exception):
    """An error as Vertex AI answers it: a canonical code (google.rpc.Code) and a message."""

    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status
        self.number, self.http = CODES[status]
        self.message = message

    def rest(self) -> dict:
        return {"error": {"code": self.http, "message": self.message, "status": self.status}}

    def rpc(self) -> dict:
        return {"code": self.number, "message": self.message}


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def snake(path: str) -> str:
    """A FieldMask path in snake case (JSON clients send camelCase, gcloud snake case)."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", lambda m: "_" + m.group(1).lower(), path)


def mask_paths(query: dict, body: dict) -> list[str]:
    raw = query.get("updateMask") or query.get("update_mask") or []
    if not raw and isinstance(body.get("updateMask"), str):
        raw = [body["updateMask"]]
    if not raw and isinstance(body.get("updateMask"), dict):
        raw = [",".join(body["updateMask"].get("paths", []))]
    return [snake(p.strip()) for m in raw for p in m.split(",") if p.strip()]


def check_split(split: dict, deployed_ids: set[str], field: str) -> dict[str, int]:
    """Endpoint.traffic_split: deployed-model IDs to percentages summing to 100, or empty."""
    try:
        split = {str(k): int(v) for k, v in (split or {}).items()}
    except (TypeError, ValueError):
        raise ApiError("INVALID_ARGUMENT", f"{field}: percentages must be integers; {SPLIT_SUMMARY}") from None
    unknown = sorted(set(split) - deployed_ids)
    if unknown:
        raise ApiError("INVALID_ARGUMENT", f"{field} names {unknown}, which are not deployed on the endpoint; "
                                           f"{SPLIT_SUMMARY}")
    if any(not 0 <= v <= 100 for v in split.values()):
        raise ApiError("INVALID_ARGUMENT", f"{field} has a percentage outside 0-100; {SPLIT_SUMMARY}")
    if split and sum(split.values()) != 100:
        raise ApiError("INVALID_ARGUMENT", f"{field} must add up to 100, got {sum(split.values())}; {SPLIT_SUMMARY}")
    return split


def check_dedicated(resources: dict, field: str) -> None:
    """DedicatedResources' rules beyond the replica bounds, for deployModel and mutateDeployedModel
    ([types] machine_resources.py DedicatedResources, AutoscalingMetricSpec); normalizes the
    fields at their default away, as a read returns them."""
    if "spot" in resources and not isinstance(resources["spot"], bool):
        raise ApiError("INVALID_ARGUMENT", f"{field}.spot: {resources['spot']!r} is not a bool")
    required = resources.get("requiredReplicaCount", 0)
    if not isinstance(required, int) or isinstance(required, bool) or required < 0:
        raise ApiError("INVALID_ARGUMENT", f"{field}.required_replica_count: {required!r} must be >= 0")
    # "If not set, the default required_replica_count will be min_replica_count": more than the
    # minimum is not documented as refused; refused here, as the config and the provider do.
    if required > resources["minReplicaCount"]:
        raise ApiError("INVALID_ARGUMENT", f"{field}.required_replica_count ({required}) must be <= "
                                           f"min_replica_count ({resources['minReplicaCount']}).")
    seen = set()
    accelerators = int((resources.get("machineSpec") or {}).get("acceleratorCount") or 0)
    for index, spec in enumerate(resources.get("autoscalingMetricSpecs") or []):
        where = f"{field}.autoscaling_metric_specs[{index}]"
        metric = spec.get("metricName") if isinstance(spec, dict) else None
        if metric not in AUTOSCALING_METRICS:
            raise ApiError("INVALID_ARGUMENT", f"{where}.metric_name {metric!r} is not supported; allowed: "
                                               f"{', '.join(AUTOSCALING_METRICS)}")
        if metric in seen:
            # DedicatedResources.autoscaling_metric_specs: "At most one entry is allowed per metric."
            raise ApiError("INVALID_ARGUMENT", f"{where}: a second entry for {metric}; at most one per metric")
        seen.add(metric)
        target = spec.get("target", 60)
        percent = metric != AUTOSCALING_METRICS[2]
        if not isinstance(target, int) or isinstance(target, bool) or target < 1 or (percent and target > 100):
            allowed = "1-100 (percent)" if percent else "requests per minute per replica, >= 1"
            raise ApiError("INVALID_ARGUMENT", f"{where}.target {target!r}; allowed: {allowed}")
        if metric == AUTOSCALING_METRICS[1] and not accelerators:
            # "If machine_spec.accelerator_count is 0, the autoscaling will be based on CPU utilization
            # metric only": whether Vertex AI refuses or ignores the spec is not documented; refused here.
            raise ApiError("INVALID_ARGUMENT", f"{where}: {metric} needs machine_spec.accelerator_count > 0")
    if not resources.get("autoscalingMetricSpecs"):
        resources.pop("autoscalingMetricSpecs", None)
    for key, default in DEFAULT_VALUED.items():
        if key in resources and resources[key] == default:
            del resources[key]


# -- model servers -------------------------------------------------------------------------
# What serves a deployed model, by its container image: our images (any image that is not a
# Vertex AI prebuilt one) really run, pulled by digest and started with the AIP_* variables;
# the prebuilt images are not available here, so their servers run as the images would:
# TorchServe with the .mar, our TensorFlow Serving stand-in with the SavedModel.


class ContainerServer:
    """The model's own container image (serving.local.Container), fetching the artifacts
    from AIP_STORAGE_URI itself."""

    def __init__(self, version: dict, storage_uri: str, deployed_id: str, endpoint_id: str, *,
                 storage_host: str, registries_conf: Path | None, log: Path):
        spec = version["containerSpec"]
        # ModelContainerSpec.predict_route / health_route defaults (model.py field docs).
        default = f"/v1/endpoints/{endpoint_id}/deployedModels/{deployed_id}"
        env = {e["name"]: e["value"] for e in spec.get("env", [])}
        # The container's GCS client, pointed at the GCS emulator (google-cloud-storage
        # honours STORAGE_EMULATOR_HOST; on Vertex AI it uses the deployment's credentials).
        env["STORAGE_EMULATOR_HOST"] = storage_host
        self.container = Container(
            spec["imageUri"], storage_uri=storage_uri, predict_route=spec.get("predictRoute") or f"{default}:predict",
            health_route=spec.get("healthRoute") or default, env=env, registries_conf=registries_conf, log=log,
            deployed_model_id=deployed_id, endpoint_id=endpoint_id,
        ).__enter__()

    def predict(self, body: bytes):
        return self.container.predict(body)

    def close(self) -> None:
        self.container.__exit__(None, None, None)


class TensorFlowServer:
    """A prebuilt tf2 image's TensorFlow Serving: our stand-in (serving.tf_serving) in a child
    process, the SavedModel at the artifact's root served as version 1."""

    def __init__(self, path: Path):
        self.port = free_port()
        base = path.parent / f"{path.name}-versions"
        base.mkdir(exist_ok=True)
        if not (base / "1").exists():
            (base / "1").symlink_to(path.resolve())
        self.process = subprocess.Popen(
            [sys.executable, "-m", "serving.tf_serving", f"--port={free_port()}", f"--rest_api_port={self.port}",
             "--model_name=model", f"--model_base_path={base}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""},
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"TensorFlow Serving (stand-in) exited: {self.process.stderr.read().decode()[-2000:]}")
            try:
                if http_json(f"http://127.0.0.1:{self.port}/v1/models/model", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        self.close()
        raise TimeoutError("TensorFlow Serving (stand-in) did not come up in 120s")

    def predict(self, body: bytes):
        return http_json(f"http://127.0.0.1:{self.port}/v1/models/model:predict", body)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()


class PyTorchServer:
    """A prebuilt pytorch image's TorchServe with the .mar."""

    def __init__(self, mar: Path):
        self.server = TorchServe(mar).__enter__()

    def predict(self, body: bytes):
        return self.server.predict(body)

    def close(self) -> None:
        self.server.__exit__(None, None, None)


# -- the emulator ----------------------------------------------------------------------------


class Emulator:
    def __init__(self, data_dir: Path, storage_host: str | None, *, project_numbers: bool = False,
                 serving: bool = True, registries_conf: Path | None = None):
        self.data_dir = data_dir
        self.registries_conf = registries_conf
        self.registry_api = RegistryApi(self)
        self.bigquery_api = BigQueryApi(self)
        self.monitoring_api = MonitoringApi(self)
        self.state_path = data_dir / "state.json"
        self.lock = threading.RLock()
        self.servers: dict[tuple[str, str], object] = {}
        # Requests a model server is answering, per (endpoint, deployed ID): an undeploy lets
        # them finish before the server stops, as Vertex AI drains a deployment it removes.
        self.inflight: collections.Counter = collections.Counter()
        self.drained = threading.Condition()
        self.rr: dict[str, dict[str, float]] = {}
        self.faults: dict[str, str] = {}
        self.storage_host = storage_host
        self.project_numbers = project_numbers
        self.serving = serving
        data_dir.mkdir(parents=True, exist_ok=True)
        if self.state_path.exists():
            self.state = json.loads(self.state_path.read_text())
        else:
            self.state = {"models": {}, "endpoints": {}, "operations": {}, "next_id": 1, "calls": {}, "journal": []}

    # persistence ---------------------------------------------------------------------------

    def save(self) -> None:
        with self.lock:
            tmp = self.state_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.state, indent=1, sort_keys=True))
            tmp.replace(self.state_path)

    def _generated_id(self) -> str:
        """A 19-digit ID, as Vertex AI generates for models, endpoints, deployed models and
        operations; deterministic from a counter, so runs are reproducible."""
        self.state["next_id"] += 1
        digest = hashlib.sha256(f"vertex-emulator-{self.state['next_id']}".encode()).hexdigest()
        return str(1_000_000_000_000_000_000 + int(digest, 16) % 8_000_000_000_000_000_000)

    def count(self, method: str, resource: str, detail: str = "") -> None:
        """Count a mutating call and append it to the journal (what was called, in order)."""
        self.state["calls"][method] = self.state["calls"].get(method, 0) + 1
        self.state.setdefault("journal", []).append({"method": method, "resource": resource, "detail": detail})

    def canon(self, name: str) -> str:
        """A resource name as this emulator stores it: with the project number when
        --project-numbers is on (requests may name the project either way)."""
        if not self.project_numbers:
            return name
        return re.sub(r"^projects/([^/]+)", lambda m: f"projects/{project_number(m.group(1))}", name)

    def restore_servers(self) -> None:
        """After a restart, serve again every deployed model."""
        for endpoint in self.state["endpoints"].values():
            for deployed in endpoint.get("deployedModels", []):
                self._serve(endpoint["name"], deployed)

    def close(self) -> None:
        for server in list(self.servers.values()):
            server.close()
        self.servers.clear()

    # operations ----------------------------------------------------------------------------

    def operation(self, resource: str, kind: str, work, response_type: str) -> dict:
        """Start a long-running operation on `resource`; `work` runs in a thread and returns
        the response (or raises ApiError). Types are stored unversioned and rendered in the
        API version that asks."""
        name = f"{resource}/operations/{self._generated_id()}"
        created = now()
        op = {
            "name": name,
            "metadata": {"@type": f"{kind}OperationMetadata",
                         "genericMetadata": {"createTime": created, "updateTime": created}},
            "done": False,
        }
        self.state["operations"][name] = op
        self.save()

        def finish(**result):
            with self.lock:
                op.update(result)
                op["done"] = True
                op["metadata"]["genericMetadata"]["updateTime"] = now()
            self.save()

        def run():
            try:
                response = work()
            except ApiError as error:
                finish(error=error.rpc())
            except Exception as error:  # noqa: BLE001 - any failure ends the operation
                traceback.print_exc()
                finish(error={"code": CODES["INTERNAL"][0], "message": f"{type(error).__name__}: {error}"})
            else:
                finish(response={"@type": response_type, **(response or {})})

        threading.Thread(target=run, daemon=True).start()
        return copy.deepcopy(op)

    def get_operation(self, name: str) -> dict:
        name = self.canon(name)
        if name not in self.state["operations"]:
            raise ApiError("NOT_FOUND", f"Operation {name} not found.")
        return copy.deepcopy(self.state["operations"][name])

    # models ----------------------------------------------------------------------------------

    def _model(self, base: str) -> dict:
        model = self.state["models"].get(base)
        if model is None:
            raise ApiError("NOT_FOUND", f"Model {base} is not found.")
        return model

    def _resolve(self, name: str) -> dict:
        """The version a name designates: `M` (the default version), `M@versionId`, `M@alias`."""
        base, _, version = self.canon(name).partition("@")
        model = self._model(base)
        version = version or "default"
        for v in model["versions"]:
            if v["versionId"] == version or version in v["versionAliases"]:
                return v
        raise ApiError("NOT_FOUND", f"Model {base}@{version} is not found.")

    def _deployments_of(self, base: str, version_id: str | None = None) -> list[dict]:
        return [
            {"endpoint": e["name"], "deployedModelId": d["id"]}
            for e in self.state["endpoints"].values()
            for d in e.get("deployedModels", [])
            if d["model"] == base and version_id in (None, d["modelVersionId"])
        ]

    def model_view(self, version: dict) -> dict:
        """A model version as GetModel returns it: model-level and version-level fields merged,
        with the output-only fields."""
        model = self.state["models"][version["name"]]
        view = {k: v for k, v in version.items() if k not in ("labels",)}
        view.update({k: v for k, v in model["model"].items() if k != "labels"})
        labels = {**model["model"].get("labels", {}), **version.get("labels", {})}
        if labels:
            view["labels"] = labels
        view["versionAliases"] = list(version["versionAliases"])
        view["supportedDeploymentResourcesTypes"] = list(DEPLOYMENT_TYPES)
        view["supportedInputStorageFormats"] = list(INPUT_FORMATS)
        view["supportedOutputStorageFormats"] = list(OUTPUT_FORMATS)
        view["modelSourceInfo"] = {"sourceType": "CUSTOM"}
        deployed = self._deployments_of(version["name"], version["versionId"])
        if deployed:
            view["deployedModels"] = deployed
        view["etag"] = hashlib.sha256(json.dumps(view, sort_keys=True).encode()).hexdigest()[:24]
        return view

    def _check_aliases(self, aliases: list, field: str, pattern: re.Pattern = VERSION_ALIAS) -> list[str]:
        if not isinstance(aliases, list):
            raise ApiError("INVALID_ARGUMENT", f"{field} must be a list of strings")
        for alias in aliases:
            if not isinstance(alias, str) or not pattern.fullmatch(alias):
                raise ApiError("INVALID_ARGUMENT", f"{field}: {alias!r} is not a valid version alias; allowed: "
                                                   f"{pattern.pattern} (2-128 characters)")
        if len(set(aliases)) != len(aliases):
            raise ApiError("INVALID_ARGUMENT", f"{field} repeats an alias: {aliases}")
        return list(aliases)

    def upload(self, parent: str, body: dict) -> dict:
        parent = self.canon(parent)
        model = dict(body.get("model") or {})
        if not model.get("displayName"):
            raise ApiError("INVALID_ARGUMENT", "model.display_name is required.")
        if len(model["displayName"]) > 128:
            raise ApiError("INVALID_ARGUMENT", "model.display_name: at most 128 characters.")
        if not (model.get("containerSpec") or {}).get("imageUri"):
            raise ApiError("INVALID_ARGUMENT", "model.container_spec.image_uri is required for a custom model.")
        artifact = model.get("artifactUri")
        if artifact is not None and not re.fullmatch(r"gs://[^/]+(/.*)?", artifact):
            raise ApiError("INVALID_ARGUMENT", f"model.artifact_uri {artifact!r}: allowed: a gs://bucket/path URI")
        aliases = self._check_aliases(model.pop("versionAliases", []), "model.version_aliases")
        for output_only in ("name", "versionId", "createTime", "updateTime", "versionCreateTime",
                            "versionUpdateTime", "deployedModels", "etag", "supportedDeploymentResourcesTypes"):
            model.pop(output_only, None)
        created = now()
        parent_model = body.get("parentModel")
        if parent_model:
            base = self.canon(parent_model)
            if "@" in base or not base.startswith(parent + "/models/"):
                raise ApiError("INVALID_ARGUMENT", f"parent_model {parent_model!r}: allowed: "
                                                   f"{parent}/models/<model ID>, without a version")
            if body.get("modelId") and base.rsplit("/", 1)[1] != body["modelId"]:
                raise ApiError("INVALID_ARGUMENT", "model_id and parent_model name different models.")
            record = self._model(base)
            taken = {a: v["versionId"] for v in record["versions"] for a in v["versionAliases"] if a != "default"}
            clash = sorted(set(aliases) & set(taken))
            if clash:
                raise ApiError("ALREADY_EXISTS", f"version aliases {clash} are already used by another version of "
                                                 f"{base}; move them with mergeVersionAliases")
            version_id = str(max(int(v["versionId"]) for v in record["versions"]) + 1)
            if "default" in aliases:
                for v in record["versions"]:
                    v["versionAliases"] = [a for a in v["versionAliases"] if a != "default"]
        else:
            model_id = body.get("modelId")
            if model_id is None:
                model_id = self._generated_id()
            elif not MODEL_ID.fullmatch(model_id):
                raise ApiError("INVALID_ARGUMENT", f"model_id {model_id!r} is invalid; allowed: up to 63 of "
                                                   "[a-z0-9_-], the first not a digit or '-'")
            base = f"{parent}/models/{model_id}"
            if base in self.state["models"]:
                raise ApiError("ALREADY_EXISTS", f"Model {base} already exists.")
            record = {
                "model": {
                    "displayName": model["displayName"],
                    **({"description": model["description"]} if model.get("description") else {}),
                    **({"labels": dict(model["labels"])} if model.get("labels") else {}),
                    "createTime": created,
                    "updateTime": created,
                },
                "versions": [],
            }
            self.state["models"][base] = record
            version_id = "1"
            if "default" not in aliases:
                aliases = ["default", *aliases]
        for model_level in ("displayName", "description"):
            model.pop(model_level, None)
        version = {
            **model,
            "name": base,
            "versionId": version_id,
            "versionAliases": aliases,
            "versionCreateTime": created,
            "versionUpdateTime": created,
        }
        record["versions"].append(version)
        self.count("uploadModel", f"{base}@{version_id}")
        return self.operation(base, "UploadModel", lambda: {"model": base, "modelVersionId": version_id},
                              "UploadModelResponse")

    def list_versions(self, name: str) -> dict:
        base = self.canon(name)
        if "@" in base:
            raise ApiError("INVALID_ARGUMENT", f"{name}: listVersions takes a model name without a version")
        return {"models": [self.model_view(v) for v in self._model(base)["versions"]]}

    def list_models(self, parent: str) -> dict:
        parent = self.canon(parent) + "/models/"
        return {"models": [self.model_view(self._resolve(base)) for base in sorted(self.state["models"])
                           if base.startswith(parent)]}

    def update_model(self, name: str, mask: list[str], body: dict) -> dict:
        base, _, version_id = self.canon(name).partition("@")
        model = self._model(base)
        if not mask:
            raise ApiError("INVALID_ARGUMENT", "update_mask is required.")
        version_level = bool(version_id) and version_id != "-"
        allowed = {"version_description", "labels"} if version_level else {"display_name", "description", "labels"}
        wrong = sorted(set(mask) - {"version_description", "labels", "display_name", "description"})
        if wrong:
            raise ApiError("INVALID_ARGUMENT", f"update_mask paths {wrong} cannot be updated; allowed: "
                                               "display_name, description, labels (model), version_description, "
                                               "labels (version)")
        if set(mask) - allowed:
            raise ApiError("FAILED_PRECONDITION", f"update_mask {mask} mixes model and version fields for {name}: "
                                                  "update the model (M or M@-) and a version (M@V) separately")
        updated = now()
        if version_level:
            target = self._resolve(name)
            for path in mask:
                key = {"version_description": "versionDescription"}.get(path, path)
                if body.get(key):
                    target[key] = copy.deepcopy(body[key])
                else:
                    target.pop(key, None)
            target["versionUpdateTime"] = updated
        else:
            target = self._resolve(base)
            for path in mask:
                key = {"display_name": "displayName"}.get(path, path)
                if path == "display_name" and not body.get(key):
                    raise ApiError("INVALID_ARGUMENT", "model.display_name is required.")
                if body.get(key):
                    model["model"][key] = copy.deepcopy(body[key])
                else:
                    model["model"].pop(key, None)
            model["model"]["updateTime"] = updated
        self.count("updateModel", name, ",".join(mask))
        self.save()
        return self.model_view(target)

    def merge_aliases(self, name: str, body: dict) -> dict:
        base, _, version_id = self.canon(name).partition("@")
        if not version_id.isdigit():
            raise ApiError("INVALID_ARGUMENT", f"{name}: mergeVersionAliases needs the version ID (M@1), not an alias")
        target = self._resolve(name)
        changes = body.get("versionAliases") or []
        if not changes:
            raise ApiError("INVALID_ARGUMENT", "version_aliases is required.")
        adds = [c for c in changes if not c.startswith("-")]
        removes = [c[1:] for c in changes if c.startswith("-")]
        self._check_aliases(adds, "version_aliases", MERGE_ALIAS)
        self._check_aliases(removes, "version_aliases", MERGE_ALIAS)
        if "default" in removes and "default" not in adds:
            raise ApiError("INVALID_ARGUMENT", "the default alias cannot be removed: a model has exactly one default "
                                               "version; add 'default' to another version instead")
        versions = self._model(base)["versions"]
        for alias in set(adds) - set(removes):
            for v in versions:
                if v is not target and alias in v["versionAliases"]:
                    v["versionAliases"].remove(alias)
                    v["versionUpdateTime"] = now()
            if alias not in target["versionAliases"]:
                target["versionAliases"].append(alias)
        for alias in set(removes) - set(adds):
            if alias in target["versionAliases"]:
                target["versionAliases"].remove(alias)
        target["versionUpdateTime"] = now()
        self.count("mergeVersionAliases", f"{base}@{target['versionId']}", json.dumps(changes))
        self.save()
        return self.model_view(target)

    def delete_model(self, name: str) -> dict:
        base = self.canon(name)
        if "@" in base:
            raise ApiError("INVALID_ARGUMENT", f"{name}: deleteModel takes a model name; use deleteVersion for one "
                                               "version")
        self._model(base)
        deployed = self._deployments_of(base)
        if deployed:
            raise ApiError("FAILED_PRECONDITION", f"Model {base} is deployed on {deployed[0]['endpoint']} "
                                                  f"(deployed model {deployed[0]['deployedModelId']}); undeploy it "
                                                  "first")
        del self.state["models"][base]
        self.count("deleteModel", base)
        return self.operation(base, "Delete", lambda: {}, "google.protobuf.Empty")

    def delete_version(self, name: str) -> dict:
        base, _, version_id = self.canon(name).partition("@")
        if not version_id.isdigit():
            raise ApiError("INVALID_ARGUMENT", f"{name}: deleteVersion needs the version ID explicitly "
                                               "(projects/.../models/M@1234), not an alias")
        target = self._resolve(name)
        versions = self._model(base)["versions"]
        deployed = self._deployments_of(base, version_id)
        if deployed:
            raise ApiError("FAILED_PRECONDITION", f"Model version {base}@{version_id} is deployed on "
                                                  f"{deployed[0]['endpoint']}; undeploy it first")
        if len(versions) == 1:
            raise ApiError("FAILED_PRECONDITION", f"{base}@{version_id} is the only version; delete the model "
                                                  "instead")
        if "default" in target["versionAliases"]:
            raise ApiError("FAILED_PRECONDITION", f"{base}@{version_id} holds the default alias and cannot be "
                                                  "deleted; move 'default' to another version first "
                                                  "(mergeVersionAliases)")
        versions.remove(target)
        self.count("deleteModelVersion", f"{base}@{version_id}")
        return self.operation(base, "Delete", lambda: {}, "google.protobuf.Empty")

    # endpoints -----------------------------------------------------------------------------

    def _endpoint(self, name: str) -> dict:
        endpoint = self.state["endpoints"].get(self.canon(name))
        if endpoint is None:
            raise ApiError("NOT_FOUND", f"Endpoint {self.canon(name)} is not found.")
        return endpoint

    def _touch(self, endpoint: dict) -> None:
        self.state.setdefault("traffic", []).append({
            "endpoint": endpoint["name"], "at": now(),
            "serving": sorted(k for k, v in endpoint["trafficSplit"].items() if v > 0)})
        endpoint["updateTime"] = now()
        body = {k: v for k, v in endpoint.items() if k != "etag"}
        endpoint["etag"] = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:24]

    def create_endpoint(self, parent: str, endpoint_id: str | None, body: dict) -> dict:
        parent = self.canon(parent)
        if endpoint_id is not None and not ENDPOINT_ID.fullmatch(endpoint_id):
            raise ApiError("INVALID_ARGUMENT", f"endpoint_id {endpoint_id!r} is invalid; allowed: a number of at most "
                                               "9 digits without a leading zero, or up to 63 of [a-z0-9-] starting "
                                               "with a letter and ending with a letter or digit")
        endpoint_id = endpoint_id or self._generated_id()
        if not body.get("displayName"):
            raise ApiError("INVALID_ARGUMENT", "endpoint.display_name is required.")
        name = f"{parent}/endpoints/{endpoint_id}"
        if name in self.state["endpoints"]:
            raise ApiError("ALREADY_EXISTS", f"Endpoint {name} already exists.")
        created = now()
        endpoint = {k: v for k, v in body.items() if k not in ("name", "deployedModels", "trafficSplit", "etag",
                                                               "createTime", "updateTime")}
        endpoint.update({"name": name, "deployedModels": [], "trafficSplit": {}, "createTime": created})
        if body.get("predictRequestResponseLoggingConfig"):
            endpoint["predictRequestResponseLoggingConfig"] = self._logging_config(
                endpoint, body["predictRequestResponseLoggingConfig"])
        self._touch(endpoint)
        self.state["endpoints"][name] = endpoint
        self.count("createEndpoint", name)
        return self.operation(name, "CreateEndpoint", lambda: self.endpoint_view(endpoint), "Endpoint")

    def endpoint_view(self, endpoint: dict) -> dict:
        """An endpoint as GetEndpoint returns it: empty maps and lists are left out."""
        view = copy.deepcopy(endpoint)
        for key in ("deployedModels", "trafficSplit"):
            if not view.get(key):
                view.pop(key, None)
        return view

    def list_endpoints(self, parent: str) -> dict:
        prefix = self.canon(parent) + "/endpoints/"
        return {"endpoints": [self.endpoint_view(e) for k, e in sorted(self.state["endpoints"].items())
                              if k.startswith(prefix)]}

    def delete_endpoint(self, name: str) -> dict:
        endpoint = self._endpoint(name)
        if endpoint["deployedModels"]:
            raise ApiError("FAILED_PRECONDITION", f"Endpoint {endpoint['name']} has deployed models "
                                                  f"{[d['id'] for d in endpoint['deployedModels']]}; undeploy them "
                                                  "first")
        del self.state["endpoints"][endpoint["name"]]
        self.count("deleteEndpoint", endpoint["name"])
        return self.operation(endpoint["name"], "Delete", lambda: {}, "google.protobuf.Empty")

    def update_endpoint(self, name: str, mask: list[str], body: dict) -> dict:
        endpoint = self._endpoint(name)
        if not mask:
            raise ApiError("INVALID_ARGUMENT", "update_mask is required.")
        keys = {"display_name": "displayName", "description": "description", "labels": "labels",
                "traffic_split": "trafficSplit",
                "predict_request_response_logging_config": "predictRequestResponseLoggingConfig"}
        wrong = sorted(set(mask) - set(keys))
        if wrong:
            raise ApiError("INVALID_ARGUMENT", f"update_mask paths {wrong} cannot be updated here; allowed: "
                                               f"{', '.join(sorted(keys))}")
        if "display_name" in mask and not body.get("displayName"):
            raise ApiError("INVALID_ARGUMENT", "endpoint.display_name is required.")
        if "traffic_split" in mask:
            split = check_split(body.get("trafficSplit"), {d["id"] for d in endpoint["deployedModels"]},
                                "endpoint.traffic_split")
        for path in mask:
            key = keys[path]
            if path == "traffic_split":
                endpoint["trafficSplit"] = split
            elif path == "predict_request_response_logging_config" and body.get(key):
                endpoint[key] = self._logging_config(endpoint, body[key])
            elif body.get(key):
                endpoint[key] = copy.deepcopy(body[key])
            else:
                endpoint.pop(key, None)
        self._touch(endpoint)
        self.count("updateEndpoint", endpoint["name"], json.dumps(endpoint["trafficSplit"], sort_keys=True))
        self.save()
        return self.endpoint_view(endpoint)

    @staticmethod
    def _check_dedicated(resources: dict) -> None:
        # MachineSpec.machine_type: "For DeployedModel this field is optional, and the default
        # value is n1-standard-2" (gcloud's deploy-model sends none without --machine-type).
        machine = resources["machineSpec"] = dict(resources.get("machineSpec") or {})
        machine["machineType"] = machine.get("machineType") or DEFAULT_MACHINE_TYPE
        low = int(resources.get("minReplicaCount") or 0)
        if low < 1:
            raise ApiError("INVALID_ARGUMENT", "deployed_model.dedicated_resources.min_replica_count must be >= 1.")
        high = int(resources.get("maxReplicaCount") or low)
        if high < low:
            raise ApiError("INVALID_ARGUMENT", f"dedicated_resources.max_replica_count ({high}) must be >= "
                                               f"min_replica_count ({low}).")
        resources["minReplicaCount"], resources["maxReplicaCount"] = low, high

    def _shared_pool(self, endpoint_name: str, version: dict, pool_name: str) -> str:
        """The pool a deployment shares: one that exists in the endpoint's project and region, and
        a model co-hosting serves (Vertex AI's prebuilt TensorFlow or PyTorch container: "custom
        containers are not supported", CO_HOSTING_DOC)."""
        pool = self._pool(pool_name)
        if pool["name"].split("/deploymentResourcePools/")[0] != endpoint_name.split("/endpoints/")[0]:
            raise ApiError("INVALID_ARGUMENT", f"deployed_model.shared_resources {pool_name} is not in the "
                                               f"endpoint's project and location ({endpoint_name})")
        image = (version.get("containerSpec") or {}).get("imageUri", "")
        if prebuilt(image) is None or prebuilt(image).family not in ("tf2", "pytorch"):
            raise ApiError("INVALID_ARGUMENT", f"Model {version['name']} runs {image!r}, a custom container: model "
                                               "co-hosting supports only Vertex AI's prebuilt TensorFlow and PyTorch "
                                               f"containers ({CO_HOSTING_DOC})")
        return pool["name"]

    # deployment resource pools ------------------------------------------------------------

    @property
    def pools(self) -> dict:
        return self.state.setdefault("pools", {})

    def _pool(self, name: str) -> dict:
        pool = self.pools.get(self.canon(name))
        if pool is None:
            raise ApiError("NOT_FOUND", f"DeploymentResourcePool {self.canon(name)} is not found.")
        return pool

    def _pool_users(self, name: str) -> list[dict]:
        return [{"endpoint": e["name"], "deployedModelId": d["id"]} for e in self.state["endpoints"].values()
                for d in e.get("deployedModels", []) if d.get("sharedResources") == name]

    def create_pool(self, parent: str, body: dict) -> dict:
        pool_id = body.get("deploymentResourcePoolId")
        if not isinstance(pool_id, str) or not POOL_ID.fullmatch(pool_id):
            raise ApiError("INVALID_ARGUMENT", f"deployment_resource_pool_id {pool_id!r} is invalid; allowed: at most "
                                               "63 of [a-z0-9-], starting with a letter, not ending with '-'")
        name = f"{self.canon(parent)}/deploymentResourcePools/{pool_id}"
        if name in self.pools:
            raise ApiError("ALREADY_EXISTS", f"DeploymentResourcePool {name} already exists.")
        given = copy.deepcopy(body.get("deploymentResourcePool") or {})
        resources = given.get("dedicatedResources")
        if not resources or not (resources.get("machineSpec") or {}).get("machineType"):
            raise ApiError("INVALID_ARGUMENT", "deployment_resource_pool.dedicated_resources.machine_spec is required.")
        self._check_dedicated(resources)
        pool = {k: v for k, v in given.items() if k in ("dedicatedResources", "encryptionSpec", "serviceAccount",
                                                         "disableContainerLogging")}
        pool.update({"name": name, "createTime": now()})
        self.pools[name] = pool
        self.count("createDeploymentResourcePool", name)
        return self.operation(name, "CreateDeploymentResourcePool", lambda: copy.deepcopy(pool),
                              "DeploymentResourcePool")

    def query_pool(self, name: str) -> dict:
        users = self._pool_users(self._pool(name)["name"])
        return {"deployedModelRefs": users, "totalDeployedModelCount": len(users),
                "totalEndpointCount": len({u["endpoint"] for u in users})}

    def delete_pool(self, name: str) -> dict:
        pool = self._pool(name)
        users = self._pool_users(pool["name"])
        if users:
            raise ApiError("FAILED_PRECONDITION", f"DeploymentResourcePool {pool['name']} has deployed models "
                                                  f"{[u['deployedModelId'] for u in users]}; undeploy them first")
        del self.pools[pool["name"]]
        self.count("deleteDeploymentResourcePool", pool["name"])
        return self.operation(pool["name"], "DeleteOperation", lambda: {}, "google.protobuf.Empty")

    # request-response logging ---------------------------------------------------------------

    def _logging_config(self, endpoint: dict, config: dict) -> dict:
        """endpoint.py PredictRequestResponseLoggingConfig, io.py BigQueryDestination: the rate a
        fraction in (0, 1]; the URI `bq://project[.dataset[.table]]`, at most 2000 characters; a full
        table reference needs the dataset to exist and the table not to; Vertex AI creates the table
        (`request_response_logging` when none is named; project only: dataset
        `logging_<display name>_<endpoint ID>` too)."""
        config = copy.deepcopy(config)
        if not config.get("enabled"):
            return config
        rate = config.get("samplingRate")
        try:  # a double: proto3 JSON takes a number or a string that holds one, and answers a number
            rate = config["samplingRate"] = float(rate) if not isinstance(rate, bool) else None
        except (TypeError, ValueError):
            rate = None
        if rate is None or not 0 < rate <= 1:
            raise ApiError("INVALID_ARGUMENT", f"predict_request_response_logging_config.sampling_rate {rate!r} must "
                                               "be in (0, 1]")
        uri = (config.get("bigqueryDestination") or {}).get("outputUri") or ""
        match = BQ_URI.fullmatch(uri)
        if len(uri) > 2000 or not match:
            raise ApiError("INVALID_ARGUMENT", f"bigquery_destination.output_uri {uri!r}: allowed: bq://projectId, "
                                               "bq://projectId.datasetId or bq://projectId.datasetId.tableId")
        project, dataset, table = match.groups()
        endpoint_id = endpoint["name"].rsplit("/", 1)[1]
        table = table or "request_response_logging"
        if dataset is None:
            dataset = re.sub(r"[^A-Za-z0-9_]", "_", f"logging_{endpoint.get('displayName', '')}_{endpoint_id}")
            if f"{project}:{dataset}" not in self.bigquery_api.datasets:
                self.bigquery_api.create(project, {"datasetReference": {"datasetId": dataset, "projectId": project},
                                                   "location": endpoint["name"].split("/")[3]})
        try:
            found = self.bigquery_api.dataset(project, dataset)
        except ApiError:
            raise ApiError("FAILED_PRECONDITION", f"bigquery_destination.output_uri {uri}: dataset {project}:{dataset} "
                                                  "does not exist; it must exist (Vertex AI creates only the table)")
        existing = found["_tables"].get(table)
        if existing is not None and existing.get("_owner") != endpoint["name"]:
            raise ApiError("FAILED_PRECONDITION", f"bigquery_destination.output_uri {uri}: table {table} exists "
                                                  "already; name a table that does not exist (Vertex AI creates it)")
        if existing is None:
            self.bigquery_api.create_table(project, dataset, table, LOGGING_SCHEMA, owner=endpoint["name"])
        return config

    def deploy(self, name: str, body: dict) -> dict:
        endpoint = self._endpoint(name)
        name = endpoint["name"]
        deployed = copy.deepcopy(body.get("deployedModel") or {})
        if not deployed.get("model"):
            raise ApiError("INVALID_ARGUMENT", "deployed_model.model is required.")
        version = self._resolve(deployed["model"])
        kinds = [k for k in ("dedicatedResources", "automaticResources", "sharedResources") if deployed.get(k)]
        if len(kinds) > 1:
            raise ApiError("INVALID_ARGUMENT", f"deployed_model sets {' and '.join(kinds)}; prediction_resources is "
                                               "a oneof: give one")
        if deployed.get("automaticResources"):
            raise ApiError("INVALID_ARGUMENT", f"Model {version['name']} supports only dedicated or shared resources; "
                                               "set deployed_model.dedicated_resources")
        if deployed.get("sharedResources"):
            deployed["sharedResources"] = self._shared_pool(name, version, deployed["sharedResources"])
        resources = deployed.get("dedicatedResources")
        if deployed.get("sharedResources"):
            pass
        elif not resources:
            raise ApiError("INVALID_ARGUMENT", "deployed_model.dedicated_resources is required for this model.")
        else:
            self._check_dedicated(resources)
            check_dedicated(resources, "deployed_model.dedicated_resources")
        for key in ("disableContainerLogging", "enableAccessLogging"):
            if key in deployed and not isinstance(deployed[key], bool):
                raise ApiError("INVALID_ARGUMENT", f"deployed_model.{snake(key)}: {deployed[key]!r} is not a bool")
            if deployed.get(key) is False:
                del deployed[key]
        if deployed.get("id") not in (None, ""):
            deployed_id = str(deployed["id"])
            if not DEPLOYED_MODEL_ID.fullmatch(deployed_id):
                raise ApiError("INVALID_ARGUMENT", f"deployed_model.id {deployed_id!r} is invalid; allowed: 1-10 "
                                                   "digits")
        else:
            deployed_id = self._generated_id()
        if any(d["id"] == deployed_id for d in endpoint["deployedModels"]):
            raise ApiError("ALREADY_EXISTS", f"DeployedModel {deployed_id} already exists on {name}.")
        requested = {(deployed_id if k == "0" else k): v for k, v in (body.get("trafficSplit") or {}).items()}
        split = None
        if requested:
            split = check_split(requested, {d["id"] for d in endpoint["deployedModels"]} | {deployed_id},
                                "traffic_split")
        for output_only in ("createTime", "modelVersionId"):
            deployed.pop(output_only, None)
        record = {
            **deployed,
            "id": deployed_id,
            "model": version["name"],
            "modelVersionId": version["versionId"],
            "createTime": now(),
        }
        fault = self.faults.pop("deployModel", None)
        self.count("deployModel", name, f"{deployed_id} <- {version['name']}@{version['versionId']}")

        def work():
            self._serve(name, record)
            if fault == "fail_after_serving":
                self._unserve(name, deployed_id)
                raise ApiError("INTERNAL", "injected fault: the deployment died after its container started")
            with self.lock:
                endpoint["deployedModels"].append(record)
                if split is not None:
                    endpoint["trafficSplit"] = split
                self._touch(endpoint)
            return {"deployedModel": copy.deepcopy(record)}

        return self.operation(name, "DeployModel", work, "DeployModelResponse")

    def undeploy(self, name: str, body: dict) -> dict:
        endpoint = self._endpoint(name)
        name = endpoint["name"]
        deployed_id = str(body.get("deployedModelId") or "")
        if not any(d["id"] == deployed_id for d in endpoint["deployedModels"]):
            raise ApiError("NOT_FOUND", f"DeployedModel {deployed_id!r} is not found on {name}.")
        rest = [d for d in endpoint["deployedModels"] if d["id"] != deployed_id]
        if body.get("trafficSplit"):
            split = check_split(body["trafficSplit"], {d["id"] for d in rest}, "traffic_split")
        elif not rest:
            split = {}
        elif endpoint["trafficSplit"].get(deployed_id):
            raise ApiError("FAILED_PRECONDITION", f"DeployedModel {deployed_id} has {endpoint['trafficSplit'][deployed_id]}"
                                                  "% of the traffic; give traffic_split for the remaining models")
        else:
            split = {k: v for k, v in endpoint["trafficSplit"].items() if k != deployed_id}
        endpoint["deployedModels"] = rest
        endpoint["trafficSplit"] = split
        self._touch(endpoint)
        self.count("undeployModel", name, deployed_id)

        def work():
            self._unserve(name, deployed_id)
            return {}

        return self.operation(name, "UndeployModel", work, "UndeployModelResponse")

    def mutate(self, name: str, body: dict, mask: list[str]) -> dict:
        endpoint = self._endpoint(name)
        wanted = body.get("deployedModel") or {}
        record = next((d for d in endpoint["deployedModels"] if d["id"] == str(wanted.get("id"))), None)
        if record is None:
            raise ApiError("NOT_FOUND", f"DeployedModel {wanted.get('id')!r} is not found on {endpoint['name']}.")
        if not mask:
            raise ApiError("INVALID_ARGUMENT", "update_mask is required.")
        wrong = sorted(set(mask) - MUTABLE_DEPLOYED)
        if wrong:
            raise ApiError("INVALID_ARGUMENT", f"update_mask paths {wrong} cannot be mutated; allowed: "
                                               f"{', '.join(sorted(MUTABLE_DEPLOYED))}")
        if record.get("sharedResources") and any(p.startswith("dedicated_resources.") for p in mask):
            raise ApiError("INVALID_ARGUMENT", f"DeployedModel {record['id']} runs in the shared pool "
                                               f"{record['sharedResources']}: its dedicated_resources cannot be mutated")
        if record.get("sharedResources"):
            if "disable_container_logging" in mask:
                record["disableContainerLogging"] = bool(wanted.get("disableContainerLogging"))
            self._touch(endpoint)
            self.count("mutateDeployedModel", endpoint["name"], record["id"])
            return self.operation(endpoint["name"], "MutateDeployedModel",
                                  lambda: {"deployedModel": copy.deepcopy(record)}, "MutateDeployedModelResponse")
        resources = copy.deepcopy(record.get("dedicatedResources") or {})
        given = wanted.get("dedicatedResources") or {}
        for path in mask:
            if path.startswith("dedicated_resources."):
                key = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), path.split(".", 1)[1])
                if key in given:
                    resources[key] = given[key]
                else:
                    resources.pop(key, None)
        low, high = int(resources.get("minReplicaCount") or 0), int(resources.get("maxReplicaCount") or 0)
        if low < 1 or high < low:
            raise ApiError("INVALID_ARGUMENT", f"replica counts {low}-{high}: allowed: 1 <= min_replica_count <= "
                                               "max_replica_count")
        check_dedicated(resources, "deployed_model.dedicated_resources")
        record["dedicatedResources"] = resources
        if "disable_container_logging" in mask:
            if wanted.get("disableContainerLogging"):
                record["disableContainerLogging"] = True
            else:
                record.pop("disableContainerLogging", None)
        self._touch(endpoint)
        self.count("mutateDeployedModel", endpoint["name"], record["id"])
        return self.operation(endpoint["name"], "MutateDeployedModel",
                              lambda: {"deployedModel": copy.deepcopy(record)}, "MutateDeployedModelResponse")

    # serving -------------------------------------------------------------------------------

    def _artifact_blobs(self, version: dict):
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        uri = version.get("artifactUri") or ""
        match = re.fullmatch(r"gs://([^/]+)/(.*?)/?", uri)
        if not match:
            raise ApiError("INVALID_ARGUMENT", f"artifactUri {uri!r} is not gs://bucket/path")
        bucket, prefix = match.group(1), match.group(2).rstrip("/") + "/"
        if not self.storage_host:
            raise ApiError("FAILED_PRECONDITION", f"cannot read {uri}: the emulator runs without --storage")
        client = storage.Client(project="emulator", credentials=AnonymousCredentials(),
                                client_options={"api_endpoint": self.storage_host})
        blobs = list(client.list_blobs(bucket, prefix=prefix))
        if not blobs:
            raise ApiError("FAILED_PRECONDITION", f"no artifact files under {uri}")
        return prefix, blobs

    def _fetch_artifact(self, version: dict) -> Path:
        local = self.data_dir / "artifacts" / re.sub(r"[^A-Za-z0-9_.-]", "_", f"{version['name']}@{version['versionId']}")
        if (local / ".complete").exists():
            return local
        prefix, blobs = self._artifact_blobs(version)
        for blob in blobs:
            target = local / blob.name[len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            blob.download_to_filename(str(target))
        (local / ".complete").write_text(version["artifactUri"])
        return local

    def _storage_copy(self, version: dict) -> str:
        """AIP_STORAGE_URI: "a copy of your model artifact directory in a different Cloud
        Storage bucket, which Vertex AI manages" (Custom container requirements), not
        artifactUri itself; a container that reads artifactUri fails here as on Vertex AI."""
        prefix, blobs = self._artifact_blobs(version)
        client = blobs[0].client
        managed = client.lookup_bucket(MANAGED_BUCKET) or client.create_bucket(MANAGED_BUCKET)
        model_id = version["name"].rsplit("/", 1)[1]
        copy = f"{model_id}/{version['versionId']}/"
        for blob in blobs:
            blob.bucket.copy_blob(blob, managed, copy + blob.name[len(prefix):])
        return f"gs://{MANAGED_BUCKET}/{copy}"

    def _serve(self, endpoint_name: str, deployed: dict) -> None:
        key = (endpoint_name, deployed["id"])
        if key in self.servers:
            return
        version = self._resolve(f"{deployed['model']}@{deployed['modelVersionId']}")
        if not self.serving:
            self._artifact_blobs(version)
            return
        image = version["containerSpec"]["imageUri"]
        if prebuilt(image) is None:
            log = self.data_dir / "containers" / f"{endpoint_name.rsplit('/', 1)[1]}-{deployed['id']}.log"
            server = ContainerServer(version, self._storage_copy(version), deployed["id"],
                                     endpoint_name.rsplit("/", 1)[1], storage_host=self.storage_host,
                                     registries_conf=self.registries_conf, log=log)
        else:
            artifact = self._fetch_artifact(version)
            if (artifact / "model.mar").exists():
                server = PyTorchServer(artifact / "model.mar")
            elif (artifact / "saved_model.pb").exists():
                server = TensorFlowServer(artifact)
            else:
                raise ApiError("FAILED_PRECONDITION", f"{version['artifactUri']} holds neither model.mar nor a "
                                                      f"saved_model.pb, which {image} serves")
        self.servers[key] = server

    def _unserve(self, endpoint_name: str, deployed_id: str) -> None:
        key = (endpoint_name, deployed_id)
        server = self.servers.pop(key, None)
        if server is not None:
            with self.drained:
                self.drained.wait_for(lambda: self.inflight[key] == 0, timeout=60)
            server.close()

    def _route(self, endpoint: dict) -> str:
        """Smooth weighted round robin over the traffic split: exact shares over time."""
        split = {k: v for k, v in endpoint["trafficSplit"].items() if v > 0}
        if not split:
            raise ApiError("FAILED_PRECONDITION", f"Endpoint {endpoint['name']} has no deployed model taking "
                                                  "traffic")
        state = self.rr.setdefault(endpoint["name"], {})
        for k, v in split.items():
            state[k] = state.get(k, 0) + v
        chosen = max(sorted(split), key=lambda k: state[k])
        state[chosen] -= sum(split.values())
        return chosen

    def predict(self, name: str, raw: bytes) -> tuple[int, dict]:
        if len(raw) > PREDICT_LIMIT:
            raise ApiError("INVALID_ARGUMENT", f"Request payload size exceeds the limit: {PREDICT_LIMIT} bytes "
                                               f"(got {len(raw)}).")
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            raise ApiError("INVALID_ARGUMENT", "Invalid JSON payload received.") from None
        if not isinstance(body, dict) or not isinstance(body.get("instances"), list) or not body["instances"]:
            raise ApiError("INVALID_ARGUMENT", "instances: a non-empty list is required.")
        with self.lock:
            endpoint = self._endpoint(name)
            deployed_id = self._route(endpoint)
            record = next(d for d in endpoint["deployedModels"] if d["id"] == deployed_id)
            key = (endpoint["name"], deployed_id)
            server = self.servers.get(key)
            version = self._resolve(f"{record['model']}@{record['modelVersionId']}")
            display_name = self.state["models"][record["model"]]["model"]["displayName"]
            if server is not None:
                with self.drained:
                    self.inflight[key] += 1
        if server is None:
            raise ApiError("UNAVAILABLE", f"deployed model {deployed_id} is not serving")
        try:
            status, answer = server.predict(raw)
        finally:
            with self.drained:
                self.inflight[key] -= 1
                self.drained.notify_all()
        if status != 200:
            message = (answer.get("message") or answer.get("error")) if isinstance(answer, dict) else str(answer)
            raise ApiError("INVALID_ARGUMENT" if 400 <= status < 500 else "INTERNAL",
                           f"model server answered {status}: {message}")
        return 200, {
            "predictions": answer["predictions"],
            "deployedModelId": deployed_id,
            "model": record["model"],
            "modelVersionId": version["versionId"],
            "modelDisplayName": display_name,
        }

    # routing -------------------------------------------------------------------------------

    # For rehearsal.registry_api, the emulator's other Google APIs.
    error = staticmethod(lambda status, message: ApiError(status, message))
    now = staticmethod(now)

    def handle(self, method: str, path: str, query: dict, raw: bytes) -> tuple[int, dict]:
        if path.startswith("/emulator/"):
            return self._admin(method, path, json.loads(raw) if raw else {})
        if other := re.fullmatch(r"/(bigquery/v2|monitoring/v3)/(.+)", path):
            api = self.bigquery_api if other.group(1).startswith("bigquery") else self.monitoring_api
            with self.lock:
                return 200, api.handle(method, other.group(2), query, json.loads(raw) if raw else {})
        if other := re.fullmatch(r"/(artifactregistry|cloudresourcemanager)/v1/(.+)", path):
            with self.lock:
                return 200, self.registry_api.handle(method, other.group(1), other.group(2), query,
                                                     json.loads(raw) if raw else {})
        match = re.fullmatch(r"/(v1|v1beta1|ui)/(.+)", path)
        if not match:
            raise ApiError("NOT_FOUND", f"no route {method} {path}")
        api, rest = match.groups()
        api = "v1" if api == "ui" else api
        if re.fullmatch(rf"{LOCATION}/endpoints/[^/:]+:predict", rest):
            return self.predict(rest.rsplit(":", 1)[0], raw)
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            raise ApiError("INVALID_ARGUMENT", "Invalid JSON payload received.") from None
        with self.lock:
            result = self._route_call(method, rest, query, body)
        return 200, self._render(result, api)

    def _route_call(self, method: str, rest: str, query: dict, body: dict) -> dict:
        q = lambda key: (query.get(key) or [None])[0]  # noqa: E731
        if method == "GET" and re.fullmatch(rf"{LOCATION}/(?:[^/]+/[^/]+/)?operations/[^/]+", rest):
            return self.get_operation(rest)
        if m := re.fullmatch(rf"({LOCATION})/models:upload", rest):
            if method == "POST":
                return self.upload(m.group(1), body)
        if m := re.fullmatch(rf"({LOCATION})/models", rest):
            if method == "GET":
                return self.list_models(m.group(1))
        if m := re.fullmatch(rf"({LOCATION}/models/[^/:]+):(\w+)", rest):
            name, verb = m.groups()
            if verb == "listVersions" and method == "GET":
                return self.list_versions(name)
            if verb == "deleteVersion" and method == "DELETE":
                return self.delete_version(name)
            if verb == "mergeVersionAliases" and method == "POST":
                return self.merge_aliases(name, body)
        if re.fullmatch(rf"{LOCATION}/models/[^/:]+", rest):
            if method == "GET":
                return self.model_view(self._resolve(rest))
            if method == "PATCH":
                return self.update_model(rest, mask_paths(query, body), body)
            if method == "DELETE":
                return self.delete_model(rest)
        if m := re.fullmatch(rf"({LOCATION})/deploymentResourcePools", rest):
            if method == "POST":
                return self.create_pool(m.group(1), body)
            if method == "GET":
                prefix = self.canon(m.group(1)) + "/deploymentResourcePools/"
                return {"deploymentResourcePools": [copy.deepcopy(v) for k, v in sorted(self.pools.items())
                                                    if k.startswith(prefix)]}
        if re.fullmatch(rf"{LOCATION}/deploymentResourcePools/[^/:]+:queryDeployedModels", rest) and method == "GET":
            return self.query_pool(rest.rsplit(":", 1)[0])
        if re.fullmatch(rf"{LOCATION}/deploymentResourcePools/[^/:]+", rest):
            if method == "GET":
                return copy.deepcopy(self._pool(rest))
            if method == "DELETE":
                return self.delete_pool(rest)
        if m := re.fullmatch(rf"({LOCATION})/endpoints", rest):
            if method == "POST":
                return self.create_endpoint(m.group(1), q("endpointId") or q("endpoint_id"), body)
            if method == "GET":
                return self.list_endpoints(m.group(1))
        if m := re.fullmatch(rf"({LOCATION}/endpoints/[^/:]+):(\w+)", rest):
            name, verb = m.groups()
            if method == "POST" and verb == "deployModel":
                return self.deploy(name, body)
            if method == "POST" and verb == "undeployModel":
                return self.undeploy(name, body)
            if method == "POST" and verb == "mutateDeployedModel":
                return self.mutate(name, body, mask_paths(query, body))
        if re.fullmatch(rf"{LOCATION}/endpoints/[^/:]+", rest):
            if method == "GET":
                return self.endpoint_view(self._endpoint(rest))
            if method == "PATCH":
                return self.update_endpoint(rest, mask_paths(query, body), body)
            if method == "DELETE":
                return self.delete_endpoint(rest)
        raise ApiError("NOT_FOUND", f"no route {method} /{rest}")

    @staticmethod
    def _render(body: dict, api: str) -> dict:
        """Operation metadata and responses carry `@type`s in the API version asked."""

        def fix(value):
            if isinstance(value, dict):
                out = {k: fix(v) for k, v in value.items()}
                kind = out.get("@type")
                if isinstance(kind, str) and not kind.startswith("type.googleapis.com/"):
                    out["@type"] = ("type.googleapis.com/" + kind if kind.startswith("google.protobuf.")
                                    else f"type.googleapis.com/google.cloud.aiplatform.{api}.{kind}")
                return out
            if isinstance(value, list):
                return [fix(v) for v in value]
            return value

        return fix(body)

    def _admin(self, method: str, path: str, body: dict) -> tuple[int, dict]:
        if path == "/emulator/faults" and method == "POST":
            self.faults.update(body)
            return 200, {"faults": self.faults}
        if path == "/emulator/calls":
            return 200, dict(self.state["calls"])
        if path == "/emulator/journal":
            return 200, {"journal": list(self.state.get("journal", []))}
        if path == "/emulator/traffic":
            return 200, {"traffic": list(self.state.get("traffic", []))}
        if path == "/emulator/state":
            with self.lock:
                return 200, copy.deepcopy(self.state)
        if path == "/emulator/health":
            return 200, {"ok": True}
        raise ApiError("NOT_FOUND", f"no route {method} {path}")


def make_handler(emulator: Emulator):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes: without TCP_NODELAY, Nagle and delayed ACKs
        # hold every answer on a kept-alive connection for ~40 ms.
        disable_nagle_algorithm = True

        def log_message(self, format, *args):
            if os.environ.get("EEV_EMULATOR_VERBOSE"):
                super().log_message(format, *args)

        def _dispatch(self):
            url = urlparse(self.path)
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                status, body = emulator.handle(self.command, unquote(url.path), parse_qs(url.query), raw)
            except ApiError as error:
                status, body = error.http, error.rest()
            except (ValueError, KeyError, TypeError, AttributeError) as error:
                error = ApiError("INVALID_ARGUMENT", f"{type(error).__name__}: {error}")
                status, body = error.http, error.rest()
            send_json(self, status, body)

        do_GET = do_POST = do_PATCH = do_DELETE = _dispatch

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rehearsal.vertex_emulator", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--storage", help="GCS emulator URL (http://127.0.0.1:PORT)")
    parser.add_argument("--project-numbers", action="store_true",
                        help="name resources with project numbers, as Vertex AI does")
    parser.add_argument("--no-serving", action="store_true",
                        help="check artifacts on deploy, but start no model server")
    parser.add_argument("--registries-conf", type=Path,
                        help="containers-registries.conf(5) for pulling images (a loopback mirror of the registries)")
    args = parser.parse_args(argv)
    serving = not args.no_serving and os.environ.get("EEV_EMULATOR_SERVE", "1") != "0"
    numbers = args.project_numbers or os.environ.get("EEV_EMULATOR_PROJECT_NUMBERS") == "1"
    emulator = Emulator(args.data_dir, args.storage, project_numbers=numbers, serving=serving,
                        registries_conf=args.registries_conf)
    if serving:
        emulator.restore_servers()
    httpd = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(emulator))
    httpd.daemon_threads = True
    print(f"vertex emulator on http://127.0.0.1:{args.port} (state in {args.data_dir})", flush=True)

    def stop(*_):
        # serve_forever runs in this thread: shut it down from another one.
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        httpd.serve_forever()
    finally:
        emulator.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
