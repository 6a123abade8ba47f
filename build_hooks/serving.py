"""Serve built artifacts locally the way Vertex AI's prebuilt containers do.

- PyTorch: a real TorchServe on 127.0.0.1 with model.mar registered as `model`, the JSON
  service envelope on (as in the prebuilt container), predict at /predictions/model.
- TensorFlow: the SavedModel loaded by TensorFlow and its serving signature called on the
  tensors TensorFlow Serving would build from the request.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np


def torchserve_command() -> str:
    """The torchserve script of this interpreter's environment, else the one on PATH."""
    beside = Path(sys.executable).with_name("torchserve")
    found = str(beside) if beside.exists() else shutil.which("torchserve")
    if not found:
        raise RuntimeError("torchserve is not installed: pip install torchserve==0.12.0 pyyaml")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def send_json(handler, status: int, body) -> None:
    """Answer a request of an http.server handler with a JSON body."""
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def http_json(url: str, body: dict | bytes | None = None, timeout: float = 60.0, *,
              method: str | None = None) -> tuple[int, dict | str]:
    """One call: `body` is JSON to encode, or the exact bytes to send; POST with a body, GET
    without, unless `method` says otherwise. The answer as JSON, or its text."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json"},
        method=method or ("POST" if data is not None else "GET"),
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


class TorchServe:
    """A TorchServe process serving one .mar; use as a context manager."""

    def __init__(self, mar: Path, *, workers: int = 1, batch_size: int = 1, startup_timeout: float = 120.0,
                 properties: dict[str, str] | None = None):
        self.mar = Path(mar)
        self.properties = properties or {}
        """Extra config.properties entries (e.g. decode_input_request=false)."""
        self.workers = workers
        self.batch_size = batch_size
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen | None = None
        self.home: Path | None = None
        self.port = self.management_port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> TorchServe:
        if shutil.which("java") is None:
            raise RuntimeError("TorchServe needs Java 11+ on PATH (`java -version`)")
        self.home = Path(tempfile.mkdtemp(prefix="torchserve-"))
        store = self.home / "store"
        store.mkdir()
        shutil.copy(self.mar, store / "model.mar")
        self.port, self.management_port, metrics = free_port(), free_port(), free_port()
        config = self.home / "config.properties"
        config.write_text(
            "\n".join(
                [
                    f"inference_address=http://127.0.0.1:{self.port}",
                    f"management_address=http://127.0.0.1:{self.management_port}",
                    f"metrics_address=http://127.0.0.1:{metrics}",
                    "grpc_inference_address=127.0.0.1",
                    "grpc_management_address=127.0.0.1",
                    f"grpc_inference_port={free_port()}",
                    f"grpc_management_port={free_port()}",
                    # As in Vertex AI's prebuilt PyTorch container: {"instances": [...]} in,
                    # {"predictions": [...]} out, one handler input per instance.
                    "service_envelope=json",
                    "disable_token_authorization=true",
                    "enable_envvars_config=false",
                    "install_py_dep_per_model=false",
                    f"default_workers_per_model={self.workers}",
                    # Workers talk to the frontend on unix sockets named after this port;
                    # a port of our own lets several TorchServes run side by side.
                    f"initial_worker_port={free_port()}",
                    "max_request_size=104857600",
                    "max_response_size=104857600",
                    f"model_store={store}",
                    "job_queue_size=1000",
                    "models=" + json.dumps(
                        {"model": {"1.0": {"marName": "model.mar", "minWorkers": self.workers,
                                           "maxWorkers": self.workers, "batchSize": self.batch_size,
                                           "maxBatchDelay": 5, "responseTimeout": 120}}}
                    ),
                    "load_models=model.mar",
                ]
                + [f"{key}={value}" for key, value in self.properties.items()]
            )
            + "\n"
        )
        (self.home / "tmp").mkdir()
        # TMPDIR of its own: torchserve keeps its pid file there and refuses to start
        # while another instance's pid file exists.
        env = {**os.environ, "LOG_LOCATION": str(self.home / "logs"), "METRICS_LOCATION": str(self.home / "logs"),
               "TS_DISABLE_SYSTEM_METRICS": "true", "TMPDIR": str(self.home / "tmp")}
        self.log = open(self.home / "torchserve.out", "w")
        self.process = subprocess.Popen(
            [torchserve_command(), "--start", "--foreground", "--ncs", "--ts-config", str(config),
             "--model-store", str(store), "--disable-token-auth"],
            cwd=self.home, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            # Its own process group: the Java frontend and the Python workers stop together.
            start_new_session=True,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"TorchServe exited ({self.process.returncode}):\n{self.output()}")
            try:
                status, body = http_json(f"http://127.0.0.1:{self.management_port}/models/model", timeout=2)
                if status == 200 and any(
                    w.get("status") == "READY" for m in body for w in m.get("workers", [])
                ):
                    return
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.5)
        raise TimeoutError(f"TorchServe not ready after {self.startup_timeout:.0f}s:\n{self.output()}")

    def output(self, lines: int = 40) -> str:
        path = self.home / "torchserve.out" if self.home else None
        if not path or not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def predict(self, body: dict | bytes) -> tuple[int, dict | str]:
        return http_json(f"{self.url}/predictions/model", body)

    def worker_pids(self) -> list[int]:
        status, body = http_json(f"http://127.0.0.1:{self.management_port}/models/model", timeout=5)
        return [w.get("pid") for m in body for w in m.get("workers", [])] if status == 200 else []

    def __exit__(self, *exc) -> None:
        # Not `torchserve --stop`: it stops whichever TorchServe wrote the shared pid file.
        if self.process:
            for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
                try:
                    os.killpg(self.process.pid, sig)
                except ProcessLookupError:
                    break
                deadline = time.monotonic() + wait
                while time.monotonic() < deadline:
                    self.process.poll()  # reap the leader, or the group never looks empty
                    if not _group_alive(self.process.pid):
                        break
                    time.sleep(0.1)
            self.process.wait(timeout=10)
        if getattr(self, "log", None):
            self.log.close()
        if self.home:
            shutil.rmtree(self.home, ignore_errors=True)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


class SavedModelServer:
    """A SavedModel's serving signature, called as TensorFlow Serving would call it."""

    def __init__(self, path: Path):
        import tensorflow as tf

        self.tf = tf
        self.loaded = tf.saved_model.load(str(path))
        self.signature = self.loaded.signatures["serving_default"]

    def predict_json(self, body: dict) -> dict:
        """REST predict on the row format: {"instances": [{input: value}]} -> {"predictions": ...}."""
        tf = self.tf
        instances = body["instances"]
        names = list(self.signature.structured_input_signature[1])
        inputs = {n: tf.constant([_b64_value(instance[n]) for instance in instances]) for n in names}
        outputs = {k: v.numpy() for k, v in self.signature(**inputs).items()}
        rows = []
        for i in range(len(instances)):
            row = {k: _plain(v[i]) for k, v in outputs.items()}
            rows.append(next(iter(row.values())) if len(row) == 1 else row)
        return {"predictions": rows}

    def predict_tensors(self, inputs: dict) -> dict[str, np.ndarray]:
        """gRPC Predict: named tensors in, named tensors out."""
        tf = self.tf
        return {k: v.numpy() for k, v in self.signature(**{n: tf.constant(t) for n, t in inputs.items()}).items()}


def _b64_value(value):
    """TensorFlow Serving's REST encoding of binary strings: {"b64": "..."}."""
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    return value


def _plain(value):
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value.item() if hasattr(value, "item") else value
