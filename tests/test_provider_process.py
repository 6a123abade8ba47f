"""The provider as Terraform sees it: installation (mirror + launcher + CLI config), the plugin
handshake on stdout and nothing else there, SIGINT ignored, provider-config errors at plan
time; pure helpers run in the provider's own interpreter."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from conftest import ROOT
from provider_support import PROVIDER_PYTHON, Workspace, model_config  # noqa: F401

pytestmark = pytest.mark.skipif(
    not PROVIDER_PYTHON.exists(), reason=f"no provider virtualenv at {PROVIDER_PYTHON} (set EEV_PROVIDER_PYTHON)"
)

LAUNCHER = "ee-vertex.local/ee/eevertex/0.1.0/linux_amd64/terraform-provider-eevertex_v0.1.0"


def provider_python(code: str) -> str:
    done = subprocess.run(
        [str(PROVIDER_PYTHON), "-P", "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_install_writes_mirror_and_cli_config(tmp_path):
    done = subprocess.run(
        [
            str(PROVIDER_PYTHON),
            "-m",
            "provider.install",
            "--mirror",
            str(tmp_path / "m"),
            "--cli-config",
            str(tmp_path / "tf.rc"),
            "--python",
            str(PROVIDER_PYTHON),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    launcher = tmp_path / "m" / LAUNCHER
    assert launcher.stat().st_mode & 0o111
    assert f"exec {PROVIDER_PYTHON} -P -m provider" in launcher.read_text()
    config = (tmp_path / "tf.rc").read_text()
    assert f'path    = "{tmp_path / "m"}"' in config
    assert 'include = ["ee-vertex.local/*/*"]' in config
    assert 'exclude = ["ee-vertex.local/*/*"]' in config
    assert f"TF_CLI_CONFIG_FILE={tmp_path / 'tf.rc'}" in done.stdout


def test_install_refuses_a_missing_python(tmp_path):
    done = subprocess.run(
        [
            str(PROVIDER_PYTHON),
            "-m",
            "provider.install",
            "--mirror",
            str(tmp_path / "m"),
            "--cli-config",
            str(tmp_path / "tf.rc"),
            "--python",
            str(tmp_path / "nope"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "--python" in done.stderr and "no such file" in done.stderr


def test_handshake_only_on_stdout_and_sigint_ignored(provider_cli_config, tmp_path):
    """Started from a folder holding another `provider` package (a stack folder could): the
    launcher still runs ours; stdout carries the handshake alone; Ctrl-C does not kill it."""
    launcher = provider_cli_config.parent / "mirror" / LAUNCHER
    (tmp_path / "provider").mkdir()
    (tmp_path / "provider" / "__main__.py").write_text("raise SystemExit('wrong provider package')\n")
    process = subprocess.Popen([str(launcher)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = process.stdout.readline().decode()
        fields = line.strip().split("|")
        assert fields[:3] == ["1", "6", "unix"] and fields[4] == "grpc", line
        process.send_signal(signal.SIGINT)
        time.sleep(0.5)
        assert process.poll() is None, "SIGINT stopped the provider"
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert process.stdout.read().strip() == b""  # tf prints the handshake with an extra newline


@pytest.mark.slow
def test_credentials_none_needs_a_loopback_endpoint(provider_cli_config, tmp_path):
    ws = Workspace(tmp_path / "ws", provider_cli_config, "https://us-central1-aiplatform.googleapis.com")
    ws.write({"eevertex_model": {"m": model_config()}})
    ws.init()
    error = ws.plan_error()
    assert 'credentials = "none" needs a loopback api_endpoint' in error


def test_redistribute_gives_the_leaving_share_in_proportion():
    out = provider_python(
        "import json; from provider.deployment_api import redistribute as r;"
        "print(json.dumps([r({'1': 50, '2': 30, '3': 20}, '1', ['2', '3']),"
        " r({'1': 100, '2': 0, '3': 0}, '1', ['2', '3']),"
        " r({'1': 10, '2': 45, '3': 45}, '1', ['2', '3'])]))"
    )
    assert json.loads(out) == [{"2": 60, "3": 40}, {"2": 50, "3": 50}, {"2": 50, "3": 50}]


def test_split_errors_name_the_values():
    out = provider_python(
        "import json; from provider.traffic_split import split_errors as e;"
        "print(json.dumps([e({'101': 90, '102': 20}), e({'101': 100}), e({'101': 50.5, '102': 49.5}), e({}),"
        " e({'abc': 100})]))"
    )
    assert json.loads(out) == [
        "split must sum to 100, got 110 (101 = 90, 102 = 20)",
        None,
        "split values must be whole numbers in 0..100; got 101 = 50.5, 102 = 49.5",
        "split is empty: give every deployment's share, summing to 100",
        "split keys must be deployed model IDs (digits); got abc",
    ]


def test_operation_timeout_and_progress_lines():
    """A long-running operation that never finishes: progress lines on stderr, then an error
    naming operation_timeout_seconds once the limit passes."""
    code = r"""
import json, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import provider.client as client

class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def _answer(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"name": "projects/p/locations/r/operations/1", "done": False}).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    do_GET = do_POST = _answer

server = ThreadingHTTPServer(("127.0.0.1", 0), H)
threading.Thread(target=server.serve_forever, daemon=True).start()
c = client.Client(f"http://127.0.0.1:{server.server_port}", "none", operation_timeout=1.0)
started = time.monotonic()
try:
    c.operation("POST", "projects/p/locations/r/endpoints/1:deployModel", "deploy x", body={})
except client.VertexError as error:
    print(json.dumps({"status": error.status, "message": error.message, "took": time.monotonic() - started}))
"""
    done = subprocess.run(
        [str(PROVIDER_PYTHON), "-P", "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT)},
    )
    result = json.loads(done.stdout)
    assert result["status"] == "DEADLINE_EXCEEDED"
    assert "operation_timeout_seconds" in result["message"]
    assert 1.0 <= result["took"] < 5
    assert "[eevertex] deploy x: started (projects/p/locations/r/operations/1)" in done.stderr


def test_stop_provider_ends_operation_waits_and_keeps_serving():
    """Terraform's StopProvider (after Ctrl-C): a wait for an operation ends with a diagnostic
    saying it goes on and the next apply adopts it; the server is not stopped (tf's own
    interceptor would drop every answer in flight); the plugin's Shutdown still stops it."""
    code = r"""
import json, threading, time, types
import provider.client as client
from provider.__main__ import graceful_stop_interceptor

interceptor = graceful_stop_interceptor()()
class Server:
    stopped_with = None
    def stop(self, grace): Server.stopped_with = grace
interceptor.server = Server()
c = client.Client("http://127.0.0.1:9", "none", operation_timeout=60)
c.request = lambda *a, **k: {"name": "projects/p/locations/r/operations/7", "done": False}
result = {}
def wait():
    started = time.monotonic()
    try:
        c.wait({"name": "projects/p/locations/r/operations/7", "done": False}, "deploy x")
    except client.VertexError as error:
        result.update(status=error.status, message=error.message, took=time.monotonic() - started)
thread = threading.Thread(target=wait); thread.start(); time.sleep(0.5)
interceptor.intercept_service(lambda d: "handler", types.SimpleNamespace(method="/tfplugin6.Provider/StopProvider"))
thread.join(5)
result["server_stopped_on_stop"] = Server.stopped_with is not None
interceptor.intercept_service(lambda d: "handler", types.SimpleNamespace(method="/plugin.GRPCController/Shutdown"))
result["server_stopped_on_shutdown"] = Server.stopped_with is not None
print(json.dumps(result))
"""
    done = subprocess.run(
        [str(PROVIDER_PYTHON), "-P", "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "CANCELLED" and result["took"] < 3
    assert "the next apply adopts" in result["message"]
    assert result["server_stopped_on_stop"] is False
    assert result["server_stopped_on_shutdown"] is True


def test_terraform_shim_runs_the_embedded_terraform(tmp_path):
    """The `terraform` shim cdktf can use where no Terraform CLI is installed."""
    import sys

    done = subprocess.run(
        [
            str(PROVIDER_PYTHON),
            "-m",
            "provider.install",
            "--mirror",
            str(tmp_path / "m"),
            "--cli-config",
            str(tmp_path / "tf.rc"),
            "--terraform-shim",
            str(tmp_path / "bin/terraform"),
            "--shim-python",
            sys.executable,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert f"TERRAFORM_BINARY_NAME={tmp_path / 'bin/terraform'}" in done.stdout
    version = subprocess.run(
        [str(tmp_path / "bin/terraform"), "version"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CLI_CONFIG_FILE": str(tmp_path / "tf.rc")},
    )
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("Terraform v1.15")


def test_missing_credentials_is_a_clear_error():
    out = provider_python(
        "import json, os; os.environ['GOOGLE_APPLICATION_CREDENTIALS'] = '/nonexistent/key.json'\n"
        "from provider.client import Client, VertexError\n"
        "try:\n"
        "    Client(None, 'application-default', 10).get('projects/p/locations/us-central1/models/m')\n"
        "except VertexError as error:\n"
        "    print(json.dumps([error.status, error.message]))\n"
    )
    status, message = json.loads(out)
    assert status == "UNAUTHENTICATED"
    assert "gcloud auth application-default login" in message
