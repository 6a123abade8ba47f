"""`nox -s serve`: the built artifact served as Vertex AI would (our image, run here), a
sample request that works, a clean stop on Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, rollout_toml

from build_hooks import earth_engine as ee
from serving.local import http_json

pytestmark = pytest.mark.slow


def serve_and_try(config_path, manifest) -> tuple[list[str], dict]:
    process = subprocess.Popen(
        [sys.executable, "-m", "build_hooks.serve", str(config_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    lines = []
    try:
        for line in process.stdout:
            lines.append(line.rstrip())
            if line.startswith("Ctrl-C"):
                break
        curl = next(line for line in lines if line.strip().startswith("try:"))
        words = shlex.split(curl.split("try:", 1)[1].split("|")[0])
        url, request = words[-1], words[words.index("--data") + 1].lstrip("@")
        status, body = http_json(url, json.loads(Path(request).read_text()))
        assert status == 200, body
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
        lines += [line.rstrip() for line in process.stdout]
    finally:
        if process.poll() is None:
            process.kill()
    assert lines[-1] == "stopped"
    assert not os.path.exists(request)
    return lines, body


def read(config, manifest, body) -> dict[str, np.ndarray]:
    """The sample's answer as Earth Engine reads it (one tile of the config's size)."""
    contract = ee.Contract.from_config(config.model, manifest)
    (batch,) = contract.requests(contract.example_tiles(count=1, seed=1))
    return contract.read_predictions(batch, body["predictions"])


def test_serve_pytorch_answers_the_sample_and_stops(torch_build, tmp_path):
    config, manifest = torch_build
    lines, body = serve_and_try(rollout_toml(tmp_path / "rollout.toml", config.artifact_dir), manifest)
    assert any(re.search(r"POST http://127\.0\.0\.1:\d+/predict$", line) for line in lines)
    assert any("with our image ee-serving-pytorch-cpu@sha256:" in line for line in lines)
    side = config.model.answer_size
    assert read(config, manifest, body)["probabilities"].shape == (1, side, side, 3)


def test_serve_tensorflow_answers_the_sample_and_stops(tf_build, tmp_path):
    config, manifest = tf_build
    text = (ROOT / "examples/tensorflow.toml").read_text()
    path = tmp_path / "tensorflow.toml"
    path.write_text(re.sub(r"(?m)^artifact_dir = .*$", f"artifact_dir = {json.dumps(str(config.artifact_dir))}", text))
    lines, body = serve_and_try(path, manifest)
    assert any(line.endswith("/v1/models/model:predict") for line in lines)
    assert any("with our image ee-serving-tensorflow-cpu@sha256:" in line for line in lines)
    side = config.model.answer_size
    assert read(config, manifest, body)["probabilities"].shape == (1, side, side, 3)
