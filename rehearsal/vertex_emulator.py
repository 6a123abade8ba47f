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
  half-way; `/emulator/hold` (POST {"method": "deployModel", "resource": "<part of a name>"})
  holds the answer to the next such call, once it has taken effect, until
  `/emulator/release`: the client can be killed before it learns the outcome, whatever its
  speed (GET `/emulator/hold`: {"held": true} once a call is held); `/emulator/calls`
  counts mutating calls, `/emulator/journal` lists them in
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
tests/test_vertex_emulator_*.py unless named.

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
"""  # noqa: E501 - the rules are a Markdown table: one row per line, however long

from __future__ import annotations

import argparse
import collections
import contextlib
import copy
import hashlib
import json
import os
import re
import signal
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from rehearsal.bigquery_api import BigQueryApi
from rehearsal.monitoring_api import MonitoringApi
from rehearsal.registry_api import RegistryApi, project_number
from rehearsal.vertex_common import (
    CODES,
    LOCATION,
    ApiError,
    ModelServer,
    mask_paths,
    now,
)
from rehearsal.vertex_endpoints import EndpointsApi
from rehearsal.vertex_models import ModelsApi
from rehearsal.vertex_pools import PoolsApi
from rehearsal.vertex_predict import PredictApi
from serving.local import send_json


class Emulator(ModelsApi, EndpointsApi, PoolsApi, PredictApi):
    def __init__(
        self,
        data_dir: Path,
        storage_host: str | None,
        *,
        project_numbers: bool = False,
        serving: bool = True,
        registries_conf: Path | None = None,
    ):
        self.data_dir = data_dir
        self.registries_conf = registries_conf
        self.registry_api = RegistryApi(self)
        self.bigquery_api = BigQueryApi(self)
        self.monitoring_api = MonitoringApi(self)
        self.state_path = data_dir / "state.json"
        self.lock = threading.RLock()
        self.servers: dict[tuple[str, str], ModelServer] = {}
        # Requests a model server is answering, per (endpoint, deployed ID): an undeploy lets
        # them finish before the server stops, as Vertex AI drains a deployment it removes.
        self.inflight: collections.Counter = collections.Counter()
        self.drained = threading.Condition()
        self.rr: dict[str, dict[str, float]] = {}
        self.faults: dict[str, str] = {}
        # /emulator/hold: the call whose answer waits for /emulator/release.
        self.hold: dict | None = None
        self.released = threading.Event()
        self.request = threading.local()  # .held: the hold this request's call matched
        self.storage_host = storage_host
        self.project_numbers = project_numbers
        self.serving = serving
        data_dir.mkdir(parents=True, exist_ok=True)
        if self.state_path.exists():
            self.state = json.loads(self.state_path.read_text())
        else:
            self.state = {"models": {}, "endpoints": {}, "operations": {}, "next_id": 1, "calls": {}, "journal": []}

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
        hold = self.hold
        if hold and not hold["matched"] and hold["method"] == method and hold["resource"] in resource:
            hold["matched"] = True
            self.request.held = hold

    def held(self, answer) -> None:
        """After a call has taken effect: if it is the one to hold, wait for /emulator/release
        (at most 10 minutes) before `answer()` sends its answer."""
        hold = getattr(self.request, "held", None)
        if hold:
            self.request.held = None
            hold["held"] = True
            self.released.wait(600)
        answer()

    def canon(self, name: str) -> str:
        """A resource name as this emulator stores it: with the project number when
        --project-numbers is on (requests may name the project either way)."""
        if not self.project_numbers:
            return name
        return re.sub(r"^projects/([^/]+)", lambda m: f"projects/{project_number(m.group(1))}", name)

    def close(self) -> None:
        for server in list(self.servers.values()):
            server.close()
        self.servers.clear()

    def operation(self, resource: str, kind: str, work, response_type: str) -> dict:
        """Start a long-running operation on `resource`; `work` runs in a thread and returns
        the response (or raises ApiError). Types are stored unversioned and rendered in the
        API version that asks."""
        name = f"{resource}/operations/{self._generated_id()}"
        created = now()
        op = {
            "name": name,
            "metadata": {
                "@type": f"{kind}OperationMetadata",
                "genericMetadata": {"createTime": created, "updateTime": created},
            },
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
                return 200, self.registry_api.handle(
                    method, other.group(1), other.group(2), query, json.loads(raw) if raw else {}
                )
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
        if (m := re.fullmatch(rf"({LOCATION})/models:upload", rest)) and method == "POST":
            return self.upload(m.group(1), body)
        if (m := re.fullmatch(rf"({LOCATION})/models", rest)) and method == "GET":
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
                return {
                    "deploymentResourcePools": [
                        copy.deepcopy(v) for k, v in sorted(self.pools.items()) if k.startswith(prefix)
                    ]
                }
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
                    out["@type"] = (
                        "type.googleapis.com/" + kind
                        if kind.startswith("google.protobuf.")
                        else f"type.googleapis.com/google.cloud.aiplatform.{api}.{kind}"
                    )
                return out
            if isinstance(value, list):
                return [fix(v) for v in value]
            return value

        return fix(body)

    def _admin(self, method: str, path: str, body: dict) -> tuple[int, dict]:
        if path == "/emulator/faults" and method == "POST":
            self.faults.update(body)
            return 200, {"faults": self.faults}
        if path == "/emulator/hold" and method == "POST":
            if not isinstance(body.get("method"), str) or not isinstance(body.get("resource"), str):
                raise ApiError("INVALID_ARGUMENT", 'hold needs {"method": "<a mutating call>", "resource": "<text>"}')
            self.released.clear()
            self.hold = {"method": body["method"], "resource": body["resource"], "matched": False, "held": False}
            return 200, self.hold
        if path == "/emulator/hold":
            return 200, self.hold or {"held": False}
        if path == "/emulator/release" and method == "POST":
            self.hold = None
            self.released.set()
            return 200, {}
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
            emulator.request.held = None
            try:
                status, body = emulator.handle(self.command, unquote(url.path), parse_qs(url.query), raw)
            except ApiError as error:
                status, body = error.http, error.rest()
            except (ValueError, KeyError, TypeError, AttributeError) as error:
                error = ApiError("INVALID_ARGUMENT", f"{type(error).__name__}: {error}")
                status, body = error.http, error.rest()
            # A client killed while its answer was held is gone when the answer goes out.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                emulator.held(lambda: send_json(self, status, body))

        do_GET = do_POST = do_PATCH = do_DELETE = _dispatch

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rehearsal.vertex_emulator",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--storage", help="GCS emulator URL (http://127.0.0.1:PORT)")
    parser.add_argument(
        "--project-numbers", action="store_true", help="name resources with project numbers, as Vertex AI does"
    )
    parser.add_argument(
        "--no-serving", action="store_true", help="check artifacts on deploy, but start no model server"
    )
    parser.add_argument(
        "--registries-conf",
        type=Path,
        help="containers-registries.conf(5) for pulling images (a loopback mirror of the registries)",
    )
    args = parser.parse_args(argv)
    serving = not args.no_serving and os.environ.get("EEV_EMULATOR_SERVE", "1") != "0"
    numbers = args.project_numbers or os.environ.get("EEV_EMULATOR_PROJECT_NUMBERS") == "1"
    emulator = Emulator(
        args.data_dir, args.storage, project_numbers=numbers, serving=serving, registries_conf=args.registries_conf
    )
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
