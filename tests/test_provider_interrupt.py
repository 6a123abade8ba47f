"""Ctrl-C during an apply, with the Terraform CLI: the provider ends its wait for the
operation in flight and says so, Terraform exits, the operation finishes in Vertex AI, and the
next apply adopts what it made: one upload, one deploy, nothing duplicated.

Operations are made slow by a pass-through proxy in front of the emulator (an operation reads
`done: false` for its first seconds), as real ones last minutes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from provider_support import (
    ARTIFACT,
    PROJECT,
    REGION,
    Workspace,
    emulators,  # noqa: F401
    model_config,
    put_artifact,
)

from serving.local import http_json

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not shutil.which("terraform"), reason="needs a Terraform CLI on PATH to interrupt"),
]

SLOW_SECONDS = 6.0
ENDPOINT_ID = "512345678"


class SlowOperations:
    """Forwards everything to the emulator; an operation polled within SLOW_SECONDS of its
    first poll reads as not done."""

    def __init__(self, target: str):
        first_seen: dict[str, float] = {}

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def _forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) or None
                request = urllib.request.Request(
                    target + self.path, data=body, method=self.command, headers={"Content-Type": "application/json"}
                )
                try:
                    with urllib.request.urlopen(request, timeout=60) as response:
                        status, data = response.status, response.read()
                except urllib.error.HTTPError as error:
                    status, data = error.code, error.read()
                if self.command == "GET" and "/operations/" in self.path and status == 200:
                    started = first_seen.setdefault(self.path, time.monotonic())
                    if time.monotonic() - started < SLOW_SECONDS:
                        op = json.loads(data)
                        data = json.dumps({"name": op["name"], "done": False}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def test_interrupted_apply_converges_on_retry(emulators, provider_cli_config, tmp_path):
    put_artifact(emulators, ARTIFACT)
    status, op = http_json(
        f"{emulators.vertex_url}/v1/projects/{PROJECT}/locations/{REGION}/endpoints?endpointId={ENDPOINT_ID}",
        {"displayName": "landcover"},
    )
    assert status == 200, op
    proxy = SlowOperations(emulators.vertex_url)
    try:
        ws = Workspace(tmp_path / "ws", provider_cli_config, proxy.url)
        ws.write(
            {
                "eevertex_model": {"m": model_config(model_id="interrupted")},
                "eevertex_deployment": {
                    "d": {
                        "project": PROJECT,
                        "region": REGION,
                        "endpoint_id": ENDPOINT_ID,
                        "model": "${eevertex_model.m.id}",
                        "deployed_model_id": "301",
                        "machine_type": "n1-standard-4",
                        "min_replica_count": 1,
                        "max_replica_count": 1,
                    }
                },
            }
        )
        env = {**os.environ, "TF_CLI_CONFIG_FILE": str(provider_cli_config), "TF_IN_AUTOMATION": "1"}
        subprocess.run(
            ["terraform", "init", "-no-color", "-input=false"], cwd=ws.path, env=env, check=True, capture_output=True
        )
        # Interrupt while the upload's operation runs: Ctrl-C reaches the whole process group.
        process = subprocess.Popen(
            ["terraform", "apply", "-no-color", "-input=false", "-auto-approve"],
            cwd=ws.path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        time.sleep(3)
        os.killpg(process.pid, signal.SIGINT)
        out, err = process.communicate(timeout=60)
        assert process.returncode != 0, out
        assert "interrupted: Terraform asked the provider to stop" in " ".join((out + err).split()), out + err
        calls = [c["method"] for c in emulators.journal()]
        assert calls.count("uploadModel") == 1 and "deployModel" not in calls
        time.sleep(SLOW_SECONDS)  # the upload finishes in Vertex AI meanwhile
        # The retry adopts the upload, then deploys once.
        done = subprocess.run(
            ["terraform", "apply", "-no-color", "-input=false", "-auto-approve"],
            cwd=ws.path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        calls = [c["method"] for c in emulators.journal()]
        assert calls.count("uploadModel") == 1 and calls.count("deployModel") == 1
        plan = subprocess.run(
            ["terraform", "plan", "-no-color", "-input=false", "-detailed-exitcode"],
            cwd=ws.path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert plan.returncode == 0, plan.stdout
    finally:
        proxy.close()
