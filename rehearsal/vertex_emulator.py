"""A local Vertex AI (v1 REST) for rehearsals: what our hooks and Earth Engine use of it.

`python -m rehearsal.vertex_emulator --port P --data-dir D --storage http://127.0.0.1:S`

- models: upload (new model, or a new version with `parentModel`), get (`ID`, `ID@version`,
  `ID@alias`), listVersions, delete, deleteVersion — long-running operations;
- endpoints: create, get, patch (trafficSplit), delete; deployModel, undeployModel,
  mutateDeployedModel (operations); predict, routed by the traffic split;
- operations: get (under /v1 and /ui, as the REST clients poll);
- /emulator/faults (POST {"deployModel": "fail_after_serving"}) injects a deploy that dies
  half-way; /emulator/calls counts mutating calls, /emulator/journal lists them in order.

Deployed models really serve: the artifact is read from the (emulated) bucket at
`artifactUri`; a model.mar runs in TorchServe, a SavedModel in TensorFlow. State lives in
`<data-dir>/state.json`; after a restart, deployed models are served again.
"""

from __future__ import annotations

import argparse
import copy
import datetime
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

from build_hooks.serving import TorchServe, free_port, http_json, send_json

TYPE = "type.googleapis.com/google.cloud.aiplatform.v1."
STATUS = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 409: "ALREADY_EXISTS", 412: "FAILED_PRECONDITION",
          500: "INTERNAL", 503: "UNAVAILABLE"}


class ApiError(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")


# -- model servers -------------------------------------------------------------------------


class TensorFlowServer:
    """build_hooks.tf_http in a child process."""

    def __init__(self, path: Path):
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "build_hooks.tf_http", str(path), str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""},
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"TensorFlow server exited: {self.process.stderr.read().decode()[-2000:]}")
            try:
                if http_json(f"http://127.0.0.1:{self.port}/v1/models/model", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        self.close()
        raise TimeoutError("TensorFlow server did not come up in 120s")

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
    def __init__(self, mar: Path):
        self.server = TorchServe(mar).__enter__()

    def predict(self, body: bytes):
        return self.server.predict(body)

    def close(self) -> None:
        self.server.__exit__(None, None, None)


# -- the emulator ----------------------------------------------------------------------------


class Emulator:
    def __init__(self, data_dir: Path, storage_host: str | None):
        self.data_dir = data_dir
        self.state_path = data_dir / "state.json"
        self.lock = threading.RLock()
        self.servers: dict[tuple[str, str], object] = {}
        self.rr: dict[str, dict[str, float]] = {}
        self.faults: dict[str, str] = {}
        self.storage_host = storage_host
        data_dir.mkdir(parents=True, exist_ok=True)
        if self.state_path.exists():
            self.state = json.loads(self.state_path.read_text())
        else:
            self.state = {"models": {}, "endpoints": {}, "operations": {}, "next_id": 1, "calls": {}}

    # persistence ---------------------------------------------------------------------------

    def save(self) -> None:
        with self.lock:
            tmp = self.state_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.state, indent=1, sort_keys=True))
            tmp.replace(self.state_path)

    def _next(self) -> str:
        self.state["next_id"] += 1
        return str(self.state["next_id"])

    def count(self, method: str, resource: str, detail: str = "") -> None:
        """Count a mutating call and append it to the journal (what was called, in order)."""
        self.state["calls"][method] = self.state["calls"].get(method, 0) + 1
        self.state.setdefault("journal", []).append({"method": method, "resource": resource, "detail": detail})

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

    def operation(self, parent: str, work, response_type: str) -> dict:
        name = f"{parent}/operations/{self._next()}"
        op = {"name": name, "done": False}
        self.state["operations"][name] = op
        self.save()

        def run():
            try:
                result = work()
                with self.lock:
                    op["response"] = {"@type": response_type, **(result or {})}
                    op["done"] = True
            except ApiError as error:
                with self.lock:
                    op["error"] = {"code": _grpc_code(error.code), "message": error.message}
                    op["done"] = True
            except Exception as error:  # noqa: BLE001 - any failure ends the operation
                traceback.print_exc()
                with self.lock:
                    op["error"] = {"code": 13, "message": f"{type(error).__name__}: {error}"}
                    op["done"] = True
            self.save()

        threading.Thread(target=run, daemon=True).start()
        return copy.deepcopy(op)

    def get_operation(self, name: str) -> dict:
        with self.lock:
            if name not in self.state["operations"]:
                raise ApiError(404, f"operation {name} not found")
            return copy.deepcopy(self.state["operations"][name])

    # models ----------------------------------------------------------------------------------

    def _versions(self, name: str) -> list[dict]:
        model = self.state["models"].get(name)
        if model is None:
            raise ApiError(404, f"Model {name} not found")
        return model["versions"]

    def _resolve(self, name: str) -> dict:
        base, _, version = name.partition("@")
        versions = self._versions(base)
        if not version:
            version = "default"
        for v in versions:
            if v["versionId"] == version or version in v["versionAliases"]:
                return v
        raise ApiError(404, f"Model {name} not found")

    def _model_view(self, version: dict) -> dict:
        view = copy.deepcopy(version)
        base = version["name"]
        view["deployedModels"] = [
            {"endpoint": e["name"], "deployedModelId": d["id"]}
            for e in self.state["endpoints"].values()
            for d in e.get("deployedModels", [])
            if d["model"] == base and d["modelVersionId"] == version["versionId"]
        ]
        return view

    def upload(self, parent: str, body: dict) -> dict:
        model = body.get("model") or {}
        for field in ("displayName", "artifactUri"):
            if not model.get(field):
                raise ApiError(400, f"model.{field} is required")
        if not (model.get("containerSpec") or {}).get("imageUri"):
            raise ApiError(400, "model.containerSpec.imageUri is required")
        aliases = model.get("versionAliases", [])
        if body.get("parentModel"):
            base = body["parentModel"]
            versions = self._versions(base)
            taken = {a for v in versions for a in v["versionAliases"]}
            if set(aliases) & taken:
                raise ApiError(400, f"version alias {sorted(set(aliases) & taken)} already used in {base}")
            version_id = str(max(int(v["versionId"]) for v in versions) + 1)
        else:
            model_id = body.get("modelId") or self._next()
            if not re.fullmatch(r"[a-z][a-z0-9_-]{0,62}", model_id):
                raise ApiError(400, f"invalid modelId {model_id!r}")
            base = f"{parent}/models/{model_id}"
            if base in self.state["models"]:
                raise ApiError(409, f"Model {base} already exists")
            self.state["models"][base] = {"versions": []}
            version_id = "1"
            aliases = ["default", *aliases]
        version = {
            **model,
            "name": base,
            "versionId": version_id,
            "versionAliases": aliases,
            "createTime": now(),
            "versionCreateTime": now(),
        }
        self.state["models"][base]["versions"].append(version)
        self.count("uploadModel", f"{base}@{version_id}")
        return self.operation(parent, lambda: {"model": base, "modelVersionId": version_id},
                              TYPE + "UploadModelResponse")

    def delete_model(self, name: str, version_only: bool) -> dict:
        base, _, _ = name.partition("@")
        target = self._resolve(name)
        view = self._model_view(target)
        if view["deployedModels"]:
            raise ApiError(400, f"Model {name} is deployed on {view['deployedModels'][0]['endpoint']}; undeploy it first")
        versions = self._versions(base)
        if version_only:
            if "default" in target["versionAliases"]:
                raise ApiError(400, f"{name} is the default version; delete the model instead")
            versions.remove(target)
        else:
            if any(self._model_view(v)["deployedModels"] for v in versions):
                raise ApiError(400, f"a version of {base} is still deployed")
            del self.state["models"][base]
        self.count("deleteModelVersion" if version_only else "deleteModel", f"{base}@{target['versionId']}")
        parent = base.rsplit("/models/", 1)[0]
        return self.operation(parent, lambda: {}, "type.googleapis.com/google.protobuf.Empty")

    # endpoints -----------------------------------------------------------------------------

    def _endpoint(self, name: str) -> dict:
        endpoint = self.state["endpoints"].get(name)
        if endpoint is None:
            raise ApiError(404, f"Endpoint {name} not found")
        return endpoint

    def create_endpoint(self, parent: str, endpoint_id: str | None, body: dict) -> dict:
        endpoint_id = endpoint_id or self._next()
        if not re.fullmatch(r"[1-9][0-9]{0,9}", endpoint_id):
            raise ApiError(400, f"endpointId {endpoint_id!r} must be 1-10 digits without a leading zero")
        name = f"{parent}/endpoints/{endpoint_id}"
        if name in self.state["endpoints"]:
            raise ApiError(409, f"Endpoint {name} already exists")
        endpoint = {**body, "name": name, "deployedModels": [], "trafficSplit": {}, "createTime": now()}
        self.state["endpoints"][name] = endpoint
        self.count("createEndpoint", name)
        return self.operation(parent, lambda: copy.deepcopy(endpoint), TYPE + "Endpoint")

    def delete_endpoint(self, name: str) -> dict:
        endpoint = self._endpoint(name)
        if endpoint["deployedModels"]:
            raise ApiError(400, f"Endpoint {name} still has deployed models")
        del self.state["endpoints"][name]
        self.count("deleteEndpoint", name)
        return self.operation(name.rsplit("/endpoints/", 1)[0], lambda: {}, "type.googleapis.com/google.protobuf.Empty")

    def _check_split(self, endpoint: dict, split: dict[str, int], extra: set[str] = frozenset()) -> dict[str, int]:
        split = {k: int(v) for k, v in split.items()}
        known = {d["id"] for d in endpoint["deployedModels"]} | set(extra)
        unknown = set(split) - known
        if unknown:
            raise ApiError(400, f"trafficSplit names {sorted(unknown)}, which are not deployed")
        if known and sum(split.values()) != 100:
            raise ApiError(400, f"trafficSplit must sum to 100, got {sum(split.values())}")
        if any(v < 0 for v in split.values()):
            raise ApiError(400, "trafficSplit values must be >= 0")
        return split

    def update_endpoint(self, name: str, mask: list[str], body: dict) -> dict:
        endpoint = self._endpoint(name)
        for path in mask:
            if path in ("trafficSplit", "traffic_split"):
                endpoint["trafficSplit"] = self._check_split(endpoint, body.get("trafficSplit", {}))
            elif path in ("labels", "displayName", "display_name", "description"):
                key = {"display_name": "displayName"}.get(path, path)
                endpoint[key] = body.get(key)
            else:
                raise ApiError(400, f"updateMask path {path!r} is not supported")
        self.count("updateEndpoint", name, json.dumps(endpoint["trafficSplit"], sort_keys=True))
        self.save()
        return copy.deepcopy(endpoint)

    def deploy(self, name: str, body: dict) -> dict:
        endpoint = self._endpoint(name)
        deployed = dict(body.get("deployedModel") or {})
        version = self._resolve(deployed.get("model", ""))
        deployed_id = deployed.get("id") or self._next()
        if not re.fullmatch(r"[0-9]{1,10}", deployed_id):
            raise ApiError(400, f"deployedModel.id {deployed_id!r} must be 1-10 digits")
        if any(d["id"] == deployed_id for d in endpoint["deployedModels"]):
            raise ApiError(409, f"deployed model {deployed_id} already exists on {name}")
        resources = deployed.get("dedicatedResources") or {}
        if not (resources.get("machineSpec") or {}).get("machineType"):
            raise ApiError(400, "deployedModel.dedicatedResources.machineSpec.machineType is required")
        split = body.get("trafficSplit") or {"0": 100}
        split = {(deployed_id if k == "0" else k): v for k, v in split.items()}
        split = self._check_split(endpoint, split, extra={deployed_id})
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
                raise ApiError(500, "injected fault: the deployment died after its container started")
            with self.lock:
                endpoint["deployedModels"].append(record)
                endpoint["trafficSplit"] = split
            return {"deployedModel": copy.deepcopy(record)}

        return self.operation(name, work, TYPE + "DeployModelResponse")

    def undeploy(self, name: str, body: dict) -> dict:
        endpoint = self._endpoint(name)
        deployed_id = body.get("deployedModelId")
        if not any(d["id"] == deployed_id for d in endpoint["deployedModels"]):
            raise ApiError(404, f"deployed model {deployed_id} not found on {name}")
        rest = [d for d in endpoint["deployedModels"] if d["id"] != deployed_id]
        if body.get("trafficSplit") is not None and body.get("trafficSplit") != {}:
            split = self._check_split({"deployedModels": rest}, body["trafficSplit"])
        elif rest and endpoint["trafficSplit"].get(deployed_id):
            raise ApiError(400, f"{deployed_id} still takes traffic; give trafficSplit for the others")
        else:
            split = {k: v for k, v in endpoint["trafficSplit"].items() if k != deployed_id}
        endpoint["deployedModels"] = rest
        endpoint["trafficSplit"] = split
        self.count("undeployModel", name, deployed_id)

        def work():
            self._unserve(name, deployed_id)
            return {}

        return self.operation(name, work, TYPE + "UndeployModelResponse")

    def mutate(self, name: str, body: dict) -> dict:
        endpoint = self._endpoint(name)
        wanted = body.get("deployedModel") or {}
        record = next((d for d in endpoint["deployedModels"] if d["id"] == wanted.get("id")), None)
        if record is None:
            raise ApiError(404, f"deployed model {wanted.get('id')} not found on {name}")
        resources = wanted.get("dedicatedResources") or {}
        for key in ("minReplicaCount", "maxReplicaCount"):
            if key in resources:
                record["dedicatedResources"][key] = resources[key]
        self.count("mutateDeployedModel", name, record["id"])
        return self.operation(name, lambda: {"deployedModel": copy.deepcopy(record)},
                              TYPE + "MutateDeployedModelResponse")

    # serving -------------------------------------------------------------------------------

    def _fetch_artifact(self, version: dict) -> Path:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        uri = version["artifactUri"]
        match = re.fullmatch(r"gs://([^/]+)/(.*?)/?", uri)
        if not match:
            raise ApiError(400, f"artifactUri {uri!r} is not gs://bucket/path")
        bucket, prefix = match.group(1), match.group(2).rstrip("/") + "/"
        local = self.data_dir / "artifacts" / re.sub(r"[^A-Za-z0-9_.-]", "_", f"{version['name']}@{version['versionId']}")
        if (local / ".complete").exists():
            return local
        client = storage.Client(project="emulator", credentials=AnonymousCredentials(),
                                client_options={"api_endpoint": self.storage_host} if self.storage_host else None)
        blobs = list(client.list_blobs(bucket, prefix=prefix))
        if not blobs:
            raise ApiError(400, f"no artifact files under {uri}")
        for blob in blobs:
            target = local / blob.name[len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            blob.download_to_filename(str(target))
        (local / ".complete").write_text(uri)
        return local

    def _serve(self, endpoint_name: str, deployed: dict) -> None:
        key = (endpoint_name, deployed["id"])
        if key in self.servers:
            return
        version = self._resolve(f"{deployed['model']}@{deployed['modelVersionId']}")
        artifact = self._fetch_artifact(version)
        if (artifact / "model.mar").exists():
            server = PyTorchServer(artifact / "model.mar")
        elif (artifact / "saved_model.pb").exists():
            server = TensorFlowServer(artifact)
        else:
            raise ApiError(400, f"{version['artifactUri']} holds neither model.mar nor saved_model.pb")
        self.servers[key] = server

    def _unserve(self, endpoint_name: str, deployed_id: str) -> None:
        server = self.servers.pop((endpoint_name, deployed_id), None)
        if server is not None:
            server.close()

    def _route(self, endpoint: dict) -> str:
        """Smooth weighted round robin over the traffic split: exact shares over time."""
        split = {k: v for k, v in endpoint["trafficSplit"].items() if v > 0}
        if not split:
            raise ApiError(412, f"Endpoint {endpoint['name']} has no deployed model taking traffic")
        state = self.rr.setdefault(endpoint["name"], {})
        for k, v in split.items():
            state[k] = state.get(k, 0) + v
        chosen = max(sorted(split), key=lambda k: state[k])
        state[chosen] -= sum(split.values())
        return chosen

    def predict(self, name: str, raw: bytes) -> tuple[int, dict]:
        with self.lock:
            endpoint = self._endpoint(name)
            deployed_id = self._route(endpoint)
            record = next(d for d in endpoint["deployedModels"] if d["id"] == deployed_id)
            server = self.servers.get((name, deployed_id))
        if server is None:
            raise ApiError(503, f"deployed model {deployed_id} is not serving")
        status, body = server.predict(raw)
        if status != 200:
            message = body.get("message") or body.get("error") if isinstance(body, dict) else str(body)
            raise ApiError(status if 400 <= status < 500 else 500, f"model server answered {status}: {message}")
        version = self._resolve(f"{record['model']}@{record['modelVersionId']}")
        return 200, {
            "predictions": body["predictions"],
            "deployedModelId": deployed_id,
            "model": record["model"],
            "modelVersionId": record["modelVersionId"],
            "modelDisplayName": version.get("displayName", ""),
        }

    # routing -------------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict, raw: bytes) -> tuple[int, dict]:
        body = json.loads(raw) if raw and not path.endswith(":predict") else {}
        if path.startswith("/emulator/"):
            return self._admin(method, path, body)
        match = re.fullmatch(r"/(?:v1|ui)/(.+)", path)
        if not match:
            raise ApiError(404, f"no route {method} {path}")
        rest = match.group(1)
        with self.lock:
            if method == "GET" and re.fullmatch(r".+/operations/[^/]+", rest):
                return 200, self.get_operation(rest)
            if m := re.fullmatch(r"(projects/[^/]+/locations/[^/]+)/models:upload", rest):
                if method == "POST":
                    return 200, self.upload(m.group(1), body)
            if m := re.fullmatch(r"(projects/[^/]+/locations/[^/]+/models/[^/:]+):listVersions", rest):
                base = m.group(1).partition("@")[0]
                return 200, {"models": [self._model_view(v) for v in self._versions(base)]}
            if m := re.fullmatch(r"(projects/[^/]+/locations/[^/]+/models/[^/:]+):deleteVersion", rest):
                return 200, self.delete_model(m.group(1), version_only=True)
            if m := re.fullmatch(r"projects/[^/]+/locations/[^/]+/models/[^/:]+", rest):
                if method == "GET":
                    return 200, self._model_view(self._resolve(rest))
                if method == "DELETE":
                    return 200, self.delete_model(rest, version_only=False)
            if m := re.fullmatch(r"(projects/[^/]+/locations/[^/]+)/endpoints", rest):
                if method == "POST":
                    return 200, self.create_endpoint(m.group(1), (query.get("endpointId") or [None])[0], body)
                if method == "GET":
                    return 200, {"endpoints": [e for k, e in self.state["endpoints"].items() if k.startswith(m.group(1))]}
            if m := re.fullmatch(r"(projects/[^/]+/locations/[^/]+/endpoints/[^/:]+):(\w+)", rest):
                name, verb = m.groups()
                if verb == "deployModel":
                    return 200, self.deploy(name, body)
                if verb == "undeployModel":
                    return 200, self.undeploy(name, body)
                if verb == "mutateDeployedModel":
                    return 200, self.mutate(name, body)
            if re.fullmatch(r"projects/[^/]+/locations/[^/]+/endpoints/[^/:]+", rest):
                if method == "GET":
                    return 200, copy.deepcopy(self._endpoint(rest))
                if method == "PATCH":
                    mask = [p for m in query.get("updateMask", []) for p in m.split(",") if p]
                    return 200, self.update_endpoint(rest, mask, body)
                if method == "DELETE":
                    return 200, self.delete_endpoint(rest)
        if m := re.fullmatch(r"(projects/[^/]+/locations/[^/]+/endpoints/[^/:]+):predict", rest):
            return self.predict(m.group(1), raw)
        raise ApiError(404, f"no route {method} {path}")

    def _admin(self, method: str, path: str, body: dict) -> tuple[int, dict]:
        if path == "/emulator/faults" and method == "POST":
            self.faults.update(body)
            return 200, {"faults": self.faults}
        if path == "/emulator/calls":
            return 200, dict(self.state["calls"])
        if path == "/emulator/journal":
            return 200, {"journal": list(self.state.get("journal", []))}
        if path == "/emulator/state":
            return 200, copy.deepcopy(self.state)
        if path == "/emulator/health":
            return 200, {"ok": True}
        raise ApiError(404, f"no route {method} {path}")


def _grpc_code(http: int) -> int:
    return {400: 3, 404: 5, 409: 6, 412: 9, 503: 14}.get(http, 13)


def make_handler(emulator: Emulator):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):
            if os.environ.get("EEV_EMULATOR_VERBOSE"):
                super().log_message(format, *args)

        def _dispatch(self):
            url = urlparse(self.path)
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                status, body = emulator.handle(self.command, unquote(url.path), parse_qs(url.query), raw)
            except ApiError as error:
                status, body = error.code, {"error": {"code": error.code, "message": error.message,
                                                      "status": STATUS.get(error.code, "UNKNOWN")}}
            except (ValueError, KeyError, TypeError) as error:
                status, body = 400, {"error": {"code": 400, "message": f"{type(error).__name__}: {error}",
                                               "status": "INVALID_ARGUMENT"}}
            send_json(self, status, body)

        do_GET = do_POST = do_PATCH = do_DELETE = _dispatch

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rehearsal.vertex_emulator", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--storage", help="GCS emulator URL (http://127.0.0.1:PORT)")
    args = parser.parse_args(argv)
    emulator = Emulator(args.data_dir, args.storage)
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
