"""The in-process Vertex AI emulator for the tests/test_vertex_emulator_*.py modules: an API client
(Api), an in-memory GCS emulator (the module-scoped `gcs` fixture) and a fresh emulator per test (`api`).
"""

from __future__ import annotations

import threading
import time
from http.server import ThreadingHTTPServer

import pytest
import requests

from rehearsal.vertex_emulator import Emulator, make_handler
from serving.local import free_port

LOC = "projects/acme-geo-dev/locations/us-central1"
IMAGE = "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"


class Api:
    def __init__(self, url: str):
        self.url = url

    def call(self, method: str, path: str, body: dict | None = None, api: str = "v1", **query) -> requests.Response:
        return requests.request(method, f"{self.url}/{api}/{path}", json=body, params=query, timeout=30)

    def ok(self, method: str, path: str, body: dict | None = None, **query) -> dict:
        response = self.call(method, path, body, **query)
        assert response.status_code == 200, response.text
        return response.json()

    def refused(self, status: str, method: str, path: str, body: dict | None = None, **query) -> str:
        response = self.call(method, path, body, **query)
        error = response.json()["error"]
        assert (error["status"], response.status_code) == (status, error["code"]), response.text
        return error["message"]

    def wait(self, op: dict, api: str = "v1") -> dict:
        for _ in range(200):
            op = self.ok("GET", op["name"]) if api == "v1" else self.call("GET", op["name"], api=api).json()
            if op["done"]:
                return op
            time.sleep(0.02)
        raise TimeoutError(op)

    def done(self, method: str, path: str, body: dict | None = None, **query) -> dict:
        op = self.wait(self.ok(method, path, body, **query))
        assert "error" not in op, op
        return op["response"]

    def upload(self, model_id: str | None = "m", aliases: list[str] | None = None, parent: str | None = None) -> dict:
        body = {
            "model": {
                "displayName": "landcover",
                "artifactUri": "gs://models/m/",
                "containerSpec": {"imageUri": IMAGE, "grpcPorts": [{"containerPort": 8500}]},
                **({"versionAliases": aliases} if aliases is not None else {}),
            }
        }
        if parent:
            body["parentModel"] = parent
        elif model_id:
            body["modelId"] = model_id
        return self.done("POST", f"{LOC}/models:upload", body)

    def endpoint(self, endpoint_id: str | None = "123456789") -> str:
        query = {"endpointId": endpoint_id} if endpoint_id else {}
        return self.done("POST", f"{LOC}/endpoints", {"displayName": "ep"}, **query)["name"]

    def deploy(
        self, endpoint: str, model: str, split: dict | None = None, deployed_id: str | None = None, **resources
    ) -> dict:
        deployed = {
            "model": model,
            "displayName": "d",
            "dedicatedResources": {"machineSpec": {"machineType": "n1-standard-4"}, "minReplicaCount": 1, **resources},
        }
        if deployed_id:
            deployed["id"] = deployed_id
        body = {"deployedModel": deployed, **({"trafficSplit": split} if split is not None else {})}
        return self.done("POST", f"{endpoint}:deployModel", body)["deployedModel"]


@pytest.fixture(scope="module")
def gcs():
    from gcp_storage_emulator.server import create_server
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    url = f"http://127.0.0.1:{port}"
    client = storage.Client(project="test", credentials=AnonymousCredentials(), client_options={"api_endpoint": url})
    client.create_bucket("models").blob("m/saved_model.pb").upload_from_string(b"model")
    yield url
    server.stop()


def _serve(tmp_path, gcs, **options):
    emulator = Emulator(tmp_path, gcs, serving=False, **options)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(emulator))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    return httpd, Api(f"http://127.0.0.1:{httpd.server_address[1]}")


@pytest.fixture
def api(tmp_path, gcs):
    httpd, client = _serve(tmp_path, gcs)
    yield client
    httpd.shutdown()
