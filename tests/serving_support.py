"""Small served models for the serving tests: a program (model.pt2) and its contract written
by the build's own export, and our server's app around it (the CPR server, in-process)."""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn

from build_hooks.manifest import Band
from build_hooks.pytorch import export_mar, export_program
from build_hooks.spec import ModelSpec

BANDS = ("B2", "B3", "B4")


class PixelSum(nn.Module):
    """[N, 3, y, x] -> [N, 1, y, x]: the sum of the bands, per pixel."""

    def forward(self, x):
        return x.sum(dim=1, keepdim=True)


class ArgMax(nn.Module):
    """A class band: the index of the largest band (int64)."""

    def forward(self, x):
        return x.argmax(dim=1, keepdim=True)


def contract(**overrides) -> dict:
    return {
        "payload_format": "ND_ARRAYS",
        "input_bands": list(BANDS),
        "output_bands": [{"name": "sum", "dimensions": 0, "length": 1, "type": "float"}],
        "tile_size": 8,
        "input_overlap": 0,
        "output_tile_size": None,
        "max_payload_bytes": 1_500_000,
        **overrides,
    }


def export(folder: Path, model: nn.Module | None = None, *, mar: bool = False, **overrides) -> Path:
    """model.pt2 (and model.mar) with its ee_contract.json in folder, as the build writes them."""
    data = contract(**overrides)
    spec = ModelSpec(
        model=model or PixelSum(),
        framework="pytorch",
        input_bands=tuple(data["input_bands"]),
        output_bands=tuple(Band(**b) for b in data["output_bands"]),
    )
    export_program(spec, data, folder)
    if mar:
        export_mar(spec, data, folder)
    return folder


def tile(count: int = 1, side: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 0.5, size=(count, len(BANDS), side, side)).astype(np.float32)


def body(instances) -> bytes:
    return json.dumps({"instances": instances}).encode()


@contextmanager
def cpr_app(folder: Path):
    """Our server's app as the image runs it (CPR's CprModelServer with our handler), in
    this process, behind starlette's TestClient."""
    from starlette.testclient import TestClient

    env = {
        "HANDLER_MODULE": "serving.pytorch_server",
        "HANDLER_CLASS": "EarthEngineHandler",
        "AIP_HTTP_PORT": "8080",
        "AIP_HEALTH_ROUTE": "/health",
        "AIP_PREDICT_ROUTE": "/predict",
        "AIP_STORAGE_URI": str(folder),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        from google.cloud.aiplatform.prediction.model_server import CprModelServer

        with TestClient(CprModelServer()) as client:
            yield client
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        torch.set_num_threads(max(1, os.cpu_count() or 1))
