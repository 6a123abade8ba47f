"""Serving here, as Vertex AI would: one of our images in a container (`Container`, the
AIP_* variables set, the artifacts fetched by the container itself from AIP_STORAGE_URI,
ready once its health route answers 200), the prebuilt images' TorchServe in a process
(`TorchServe`), and the HTTP helpers the tests, the rehearsal and the benchmarks share.

    with Container("localhost/ee-serving-pytorch-cpu:...", storage_uri="gs://b/models/m/sha/",
                   predict_route="/predict", health_route="/health") as served:
        status, body = served.predict(request_bytes)

Containers run under buildah (`buildah run --isolation=chroot --network=host`: no daemon, and
this project's machines cannot give podman's runtime cgroups), else podman or docker (`run
--rm --network=host`). Host networking: the server listens on a free loopback port given as
AIP_HTTP_PORT, as Vertex AI gives it the port of the container spec.
"""

from __future__ import annotations

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
from typing import Any

from serving.image import ImageError, builder


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


def http_json(
    url: str, body: dict | bytes | None = None, timeout: float = 60.0, *, method: str | None = None
) -> tuple[int, dict | str]:
    """One call: `body` is JSON to encode, or the exact bytes to send; POST with a body, GET
    without, unless `method` says otherwise. The answer as JSON, or its text."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url,
        data=data,
        headers={"Content-Type": "application/json"},
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

    def __init__(
        self,
        mar: Path,
        *,
        workers: int = 1,
        batch_size: int = 1,
        startup_timeout: float = 120.0,
        properties: dict[str, str] | None = None,
    ):
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
                    "models="
                    + json.dumps(
                        {
                            "model": {
                                "1.0": {
                                    "marName": "model.mar",
                                    "minWorkers": self.workers,
                                    "maxWorkers": self.workers,
                                    "batchSize": self.batch_size,
                                    "maxBatchDelay": 5,
                                    "responseTimeout": 120,
                                }
                            }
                        }
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
        env = {
            **os.environ,
            "LOG_LOCATION": str(self.home / "logs"),
            "METRICS_LOCATION": str(self.home / "logs"),
            "TS_DISABLE_SYSTEM_METRICS": "true",
            "TMPDIR": str(self.home / "tmp"),
        }
        self.log = open(self.home / "torchserve.out", "w")
        self.process = process = subprocess.Popen(
            [
                torchserve_command(),
                "--start",
                "--foreground",
                "--ncs",
                "--ts-config",
                str(config),
                "--model-store",
                str(store),
                "--disable-token-auth",
            ],
            cwd=self.home,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            # Its own process group: the Java frontend and the Python workers stop together.
            start_new_session=True,
        )
        try:
            self._wait_ready(process)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _wait_ready(self, process: subprocess.Popen) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"TorchServe exited ({process.returncode}):\n{self.output()}")
            try:
                status, body = http_json(f"http://127.0.0.1:{self.management_port}/models/model", timeout=2)
                if status == 200 and any(w.get("status") == "READY" for w in _workers(body)):
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
        return [w["pid"] for w in _workers(body)] if status == 200 else []

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


def _workers(described: object) -> list[dict[str, Any]]:
    """The workers in the management API's description of a model: a JSON list (one entry
    per version, each with its "workers"), not the dict http_json's type promises."""
    versions = described if isinstance(described, list) else []
    return [w for v in versions for w in v.get("workers", [])]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


class Container:
    """A serving image running as a Vertex AI deployment's container; a context manager."""

    def __init__(
        self,
        image: str,
        *,
        storage_uri: str,
        predict_route: str,
        health_route: str,
        env: dict[str, str] | None = None,
        mounts: dict[str, str] | None = None,
        registries_conf: Path | None = None,
        startup_timeout: float = 300.0,
        log: Path | None = None,
        deployed_model_id: str = "1",
        endpoint_id: str = "1",
    ):
        self.image = image
        self.port = free_port()
        self.predict_route, self.health_route = predict_route, health_route
        self.env = {
            # Vertex AI's variables ("Custom container requirements for prediction").
            "AIP_HTTP_PORT": str(self.port),
            "AIP_HEALTH_ROUTE": health_route,
            "AIP_PREDICT_ROUTE": predict_route,
            "AIP_STORAGE_URI": storage_uri,
            "AIP_MODE": "PREDICTION",
            "AIP_MODE_VERSION": "1.0.0",
            "AIP_FRAMEWORK": "CUSTOM_CONTAINER",
            "AIP_DEPLOYED_MODEL_ID": deployed_model_id,
            "AIP_ENDPOINT_ID": endpoint_id,
            "AIP_MODEL_NAME": endpoint_id,
            "AIP_VERSION_NAME": deployed_model_id,
            # Our TensorFlow image's gRPC port: each container its own, as each has its own
            # network on Vertex AI (here they share the host's).
            "EEV_GRPC_PORT": str(free_port()),
            **(env or {}),
        }
        self.mounts = mounts or {}
        self.registries_conf = registries_conf
        self.startup_timeout = startup_timeout
        self.log_path = log
        self.process: subprocess.Popen | None = None
        self.container: str | None = None
        self.started_at = self.ready_at = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def grpc_port(self) -> int:
        """Where our TensorFlow image's gRPC server listens here (8500 on Vertex AI)."""
        return int(self.env["EEV_GRPC_PORT"])

    def _tool_env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.registries_conf:
            env["CONTAINERS_REGISTRIES_CONF"] = str(self.registries_conf)
        return env

    def __enter__(self) -> Container:
        tool = builder()
        self.tool = tool
        if self.log_path is None:
            self.log_path = Path(tempfile.mkdtemp(prefix="ee-container-")) / "container.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("a")
        self.started_at = time.monotonic()
        env_args = [x for key, value in sorted(self.env.items()) for x in ("-e", f"{key}={value}")]
        mount_args = [x for src, dst in sorted(self.mounts.items()) for x in ("-v", f"{src}:{dst}:ro")]
        if tool.name == "buildah":
            created = subprocess.run(
                [tool.path, "from", "--quiet", self.image], capture_output=True, text=True, env=self._tool_env()
            )
            if created.returncode:
                raise ImageError(f"buildah from {self.image} failed: {created.stderr.strip()[-1500:]}")
            self.container = created.stdout.strip().splitlines()[-1]
            config = json.loads(
                subprocess.run(
                    [tool.path, "inspect", self.container], capture_output=True, text=True, check=True
                ).stdout
            )["OCIv1"]["config"]
            command = (config.get("Entrypoint") or []) + (config.get("Cmd") or [])
            argv = [
                tool.path,
                "run",
                "--isolation=chroot",
                "--network=host",
                *env_args,
                *mount_args,
                self.container,
                "--",
                *command,
            ]
        else:
            self.container = f"ee-serving-{self.port}"
            argv = [
                tool.path,
                "run",
                "--rm",
                "--name",
                self.container,
                "--network=host",
                *env_args,
                *mount_args,
                self.image,
            ]
        self.process = process = subprocess.Popen(
            argv, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True, env=self._tool_env()
        )
        try:
            self._wait_ready(process)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _wait_ready(self, process: subprocess.Popen) -> None:
        deadline = self.started_at + self.startup_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ImageError(
                    f"the container of {self.image} exited ({process.returncode}) before it was "
                    f"healthy:\n{self.output()}"
                )
            try:
                if http_json(self.url + self.health_route, timeout=5)[0] == 200:
                    self.ready_at = time.monotonic()
                    return
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.25)
        raise TimeoutError(f"{self.image} not healthy after {self.startup_timeout:.0f}s:\n{self.output()}")

    @property
    def cold_start(self) -> float:
        """Seconds from starting the container to its first healthy answer."""
        return self.ready_at - self.started_at

    def output(self, lines: int = 40) -> str:
        if not self.log_path or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def predict(self, body: bytes, timeout: float = 120.0) -> tuple[int, dict | str]:
        return http_json(self.url + self.predict_route, body, timeout=timeout)

    def health(self) -> int:
        return http_json(self.url + self.health_route, timeout=10)[0]

    def memory_bytes(self) -> int:
        """Resident memory of the container's processes (the server and its workers)."""
        if self.process is None:
            raise RuntimeError(f"the container of {self.image} is not started (use it as a context manager)")
        total = 0
        for pid in _descendants(self.process.pid):
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            except OSError:
                continue
        return total

    def __exit__(self, *exc) -> None:
        if self.process is not None and self.process.poll() is None:
            for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
                try:
                    os.killpg(self.process.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.process.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self.container and getattr(self, "tool", None) and self.tool.name == "buildah":
            subprocess.run([self.tool.path, "rm", self.container], capture_output=True)
        if getattr(self, "_log", None):
            self._log.close()


def _descendants(pid: int) -> list[int]:
    """pid and every process below it."""
    parents: dict[int, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                parent = int(Path(proc, "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(parent, []).append(int(proc.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += parents.get(current, [])
    return sorted(found)


def registry_mirror_conf(folder: Path, mirrors: dict[str, str]) -> Path:
    """A containers-registries.conf(5) that pulls `host` from `mirror` (insecure loopback),
    for running images by their Artifact Registry names against a local registry."""
    lines = ["unqualified-search-registries = []", ""]
    for host, mirror in sorted(mirrors.items()):
        lines += [
            "[[registry]]",
            f'prefix = "{host}"',
            f'location = "{host}"',
            "",
            "[[registry.mirror]]",
            f'location = "{mirror}"',
            "insecure = true",
            "",
        ]
    path = folder / "registries.conf"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path
