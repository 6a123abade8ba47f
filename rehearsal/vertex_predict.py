"""The Vertex AI emulator's serving: what runs a deployed model (our image itself, or the stand-ins
for a prebuilt image), its artifact copy, and predict routed by the traffic split.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from config.images import prebuilt
from rehearsal.vertex_common import (
    MANAGED_BUCKET,
    PREDICT_LIMIT,
    ApiError,
    Host,
    ModelServer,
)
from serving.local import Container, TorchServe, free_port, http_json


class ContainerServer:
    """The model's own container image (serving.local.Container), fetching the artifacts
    from AIP_STORAGE_URI itself."""

    def __init__(
        self,
        version: dict,
        storage_uri: str,
        deployed_id: str,
        endpoint_id: str,
        *,
        storage_host: str | None,
        registries_conf: Path | None,
        log: Path,
    ):
        spec = version["containerSpec"]
        # ModelContainerSpec.predict_route / health_route defaults (model.py field docs).
        default = f"/v1/endpoints/{endpoint_id}/deployedModels/{deployed_id}"
        env = {e["name"]: e["value"] for e in spec.get("env", [])}
        # The container's GCS client, pointed at the GCS emulator (google-cloud-storage
        # honours STORAGE_EMULATOR_HOST; on Vertex AI it uses the deployment's credentials).
        env["STORAGE_EMULATOR_HOST"] = storage_host
        self.container = Container(
            spec["imageUri"],
            storage_uri=storage_uri,
            predict_route=spec.get("predictRoute") or f"{default}:predict",
            health_route=spec.get("healthRoute") or default,
            env=env,
            registries_conf=registries_conf,
            log=log,
            deployed_model_id=deployed_id,
            endpoint_id=endpoint_id,
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
            [
                sys.executable,
                "-m",
                "serving.tf_serving",
                f"--port={free_port()}",
                f"--rest_api_port={self.port}",
                "--model_name=model",
                f"--model_base_path={base}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""},
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                stderr = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"TensorFlow Serving (stand-in) exited: {stderr[-2000:]}")
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


class PredictApi(Host):
    """Serving the deployed models and `endpoints.predict`."""

    def restore_servers(self) -> None:
        """After a restart, serve again every deployed model."""
        for endpoint in self.state["endpoints"].values():
            for deployed in endpoint.get("deployedModels", []):
                self._serve(endpoint["name"], deployed)

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
        client = storage.Client(
            project="emulator", credentials=AnonymousCredentials(), client_options={"api_endpoint": self.storage_host}
        )
        blobs = list(client.list_blobs(bucket, prefix=prefix))
        if not blobs:
            raise ApiError("FAILED_PRECONDITION", f"no artifact files under {uri}")
        return prefix, blobs

    def _fetch_artifact(self, version: dict) -> Path:
        local = (
            self.data_dir / "artifacts" / re.sub(r"[^A-Za-z0-9_.-]", "_", f"{version['name']}@{version['versionId']}")
        )
        if (local / ".complete").exists():
            return local
        prefix, blobs = self._artifact_blobs(version)
        for blob in blobs:
            target = local / blob.name[len(prefix) :]
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
            blob.bucket.copy_blob(blob, managed, copy + blob.name[len(prefix) :])
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
            server: ModelServer = ContainerServer(
                version,
                self._storage_copy(version),
                deployed["id"],
                endpoint_name.rsplit("/", 1)[1],
                storage_host=self.storage_host,
                registries_conf=self.registries_conf,
                log=log,
            )
        else:
            artifact = self._fetch_artifact(version)
            if (artifact / "model.mar").exists():
                server = PyTorchServer(artifact / "model.mar")
            elif (artifact / "saved_model.pb").exists():
                server = TensorFlowServer(artifact)
            else:
                raise ApiError(
                    "FAILED_PRECONDITION",
                    f"{version['artifactUri']} holds neither model.mar nor a saved_model.pb, which {image} serves",
                )
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
            raise ApiError("FAILED_PRECONDITION", f"Endpoint {endpoint['name']} has no deployed model taking traffic")
        state = self.rr.setdefault(endpoint["name"], {})
        for k, v in split.items():
            state[k] = state.get(k, 0) + v
        chosen = max(sorted(split), key=lambda k: state[k])
        state[chosen] -= sum(split.values())
        return chosen

    def predict(self, name: str, raw: bytes) -> tuple[int, dict]:
        if len(raw) > PREDICT_LIMIT:
            raise ApiError(
                "INVALID_ARGUMENT", f"Request payload size exceeds the limit: {PREDICT_LIMIT} bytes (got {len(raw)})."
            )
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
            raise ApiError(
                "INVALID_ARGUMENT" if 400 <= status < 500 else "INTERNAL", f"model server answered {status}: {message}"
            )
        return 200, {
            "predictions": answer["predictions"],
            "deployedModelId": deployed_id,
            "model": record["model"],
            "modelVersionId": version["versionId"],
            "modelDisplayName": display_name,
        }
