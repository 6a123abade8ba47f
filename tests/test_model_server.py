"""Our PyTorch image's entrypoint (serving/model_server.py): CPR's server whose workers are not
killed while they load."""

import contextlib
import os
import subprocess
import sys
import time
import urllib.error
from pathlib import Path

from serving.local import free_port, http_json

ROOT = Path(__file__).resolve().parents[1]
HOLD_GIL_S = 8  # more than uvicorn's default 5 s worker healthcheck


def test_workers_import_only_uvicorn_before_they_answer_the_supervisor():
    """Spawned workers import the main module again before they can answer a ping."""
    probe = "import sys, serving.model_server; print(sorted({'torch', 'google.cloud.aiplatform'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_workers_whose_load_holds_the_gil_longer_than_5_s_are_not_killed(tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")]),
        "HANDLER_MODULE": "gil_holding_handler",
        "HANDLER_CLASS": "Handler",
        "EEV_TEST_HOLD_GIL_S": str(HOLD_GIL_S),
        "VERTEX_CPR_WEB_CONCURRENCY": "2",  # uvicorn's supervisor only runs with workers
        "AIP_HTTP_PORT": str(port),
        "AIP_HEALTH_ROUTE": "/health",
        "AIP_PREDICT_ROUTE": "/predict",
        "AIP_STORAGE_URI": str(tmp_path),
    }
    log = tmp_path / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "serving.model_server"], cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 90
        status = None
        while time.monotonic() < deadline and server.poll() is None:
            with contextlib.suppress(urllib.error.URLError, OSError):
                status = http_json(f"http://127.0.0.1:{port}/health", timeout=2)[0]
            if status == 200:
                break
            time.sleep(0.5)
        time.sleep(2)  # both workers up, and any kill would be logged by now
        text = log.read_text()
        assert status == 200, text[-2000:]
        assert text.count("Application startup complete") == 2, text[-2000:]
        assert "died" not in text, text[-2000:]
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_missing_port_is_named():
    env = {k: v for k, v in os.environ.items() if k != "AIP_HTTP_PORT"}
    result = subprocess.run(
        [sys.executable, "-m", "serving.model_server"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "AIP_HTTP_PORT must be a port number" in result.stderr
