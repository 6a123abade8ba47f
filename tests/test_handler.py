"""The TorchServe handler in-process, behind TorchServe's own JSON envelope class: the GPU
path (a device other than the CPU), the centre crop of an overlapping tile, malformed
bodies, NaN answers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn
from ts.context import Context
from ts.torch_handler.base_handler import BaseHandler
from ts.torch_handler.request_envelope.json import JSONEnvelope
from ts.utils.util import PredictionException

from serving import torchserve_handler
from serving.torchserve_handler import CONTRACT_FILE, EarthEngineHandler

BANDS = ["B2", "B3"]


@pytest.fixture(autouse=True, params=["stdlib-json", "orjson"])
def json_library(request, monkeypatch):
    """Every test both ways: the prebuilt image's Python may or may not have orjson."""
    if request.param == "stdlib-json":
        monkeypatch.setattr(torchserve_handler, "orjson", None)
    elif torchserve_handler.orjson is None:
        pytest.skip("orjson is not installed")
    return request.param


class PixelSum(nn.Module):
    """[N, 2, y, x] -> [N, 1, y, x]: the sum of both bands, per pixel."""

    def forward(self, x):
        return x.sum(dim=1, keepdim=True)


def make_handler(tmp_path, model=None, **contract):
    torch.jit.save(torch.jit.script(model or PixelSum()), str(tmp_path / "model.pt"))
    contract = {
        "payload_format": "ND_ARRAYS", "input_bands": BANDS,
        "output_bands": [{"name": "sum", "dimensions": 0, "length": 1}],
        "max_instances": 64, "max_pixels": 1 << 20, **contract,
    }
    (tmp_path / CONTRACT_FILE).write_text(json.dumps(contract))
    manifest = {"model": {"modelName": "model", "serializedFile": "model.pt", "handler": "handler.py"}}
    context = Context("model", str(tmp_path), manifest, 1, None, "0.12.0", model_yaml_config={})
    handler = EarthEngineHandler()
    handler.initialize(context)
    return handler, context


def enveloped(handler, context, rows):
    """What the prebuilt container's worker runs: the JSON envelope around the handler."""
    return JSONEnvelope(handler.handle).handle(rows, context)


class OnDevice(nn.Module):
    """A model as TorchServe loads it on a GPU: its inputs must be on its device, and its
    answers are on that device (simulated with the 'meta' device: no data, so the
    conversion back fails unless the answer goes through .cpu())."""

    def __init__(self, device):
        super().__init__()
        self.device = device
        self.seen = []

    def forward(self, x):
        self.seen.append(x.device)
        if x.device != self.device:
            raise RuntimeError(f"Expected all tensors to be on the same device, got {x.device} and {self.device}")
        return torch.empty((x.shape[0], 1) + tuple(x.shape[2:]), device=self.device)


def test_inputs_go_to_the_models_device_and_answers_come_back(tmp_path, monkeypatch):
    handler, context = make_handler(tmp_path)
    meta = torch.device("meta")
    handler.device = meta  # as BaseHandler sets cuda:<gpu_id> when TorchServe gives the worker a GPU
    handler.model = OnDevice(meta)
    moved = []

    def cpu(tensor):  # meta tensors hold no data: .cpu() stands in with ones
        moved.append(tensor.device)
        return torch.ones(tensor.shape) if tensor.is_meta else tensor

    monkeypatch.setattr(torch.Tensor, "cpu", cpu)
    tiles = np.zeros((2, 2, 4, 4), np.float32).tolist()
    predictions = handler.handle(tiles, context)
    assert handler.model.seen == [meta]
    assert moved == [meta]
    assert np.asarray(predictions).shape == (2, 4, 4)


def test_cpu_threads_only_on_cpu(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    monkeypatch.setenv("EEV_TORCH_THREADS", "3")
    make_handler(tmp_path)
    assert calls == [3]

    original = BaseHandler.initialize

    def on_gpu(self, context):
        original(self, context)
        self.device = torch.device("cuda:0")

    calls.clear()
    monkeypatch.setattr(BaseHandler, "initialize", on_gpu)
    make_handler(tmp_path)
    assert calls == []


def test_overlap_answers_the_centre_output_tile(tmp_path):
    handler, context = make_handler(tmp_path, tile_size=4, input_overlap=2)
    tile = np.arange(2 * 8 * 8, dtype=np.float32).reshape(2, 8, 8)
    (prediction,) = handler.handle([tile.tolist()], context)
    assert np.asarray(prediction).shape == (4, 4)
    np.testing.assert_array_equal(prediction, tile.sum(axis=0)[2:6, 2:6])


def test_output_tile_size_between_tile_and_instance(tmp_path):
    handler, context = make_handler(tmp_path, tile_size=4, input_overlap=2, output_tile_size=6)
    tile = np.random.default_rng(0).uniform(size=(2, 8, 8)).astype(np.float32)
    (prediction,) = handler.handle([tile.tolist()], context)
    np.testing.assert_allclose(prediction, tile.sum(axis=0)[1:7, 1:7], rtol=1e-6)


class Broken(nn.Module):
    def forward(self, x):
        out = x[:, :1].clone()
        out[:, :, 0, 0] = float("nan")
        out[:, :, 0, 1] = float("inf")
        return out


def test_nan_and_infinity_never_make_invalid_json(tmp_path):
    handler, context = make_handler(tmp_path, model=Broken())
    (text,) = enveloped(handler, context, [{"body": {"instances": [np.ones((2, 2, 2)).tolist()]}}])
    body = json.loads(text, parse_constant=lambda name: pytest.fail(f"invalid JSON token {name}"))
    assert body["predictions"][0][0] == [None, None]


@pytest.mark.parametrize(
    "row,message",
    [
        ({"body": {"instances": []}}, '"instances" must be a non-empty list'),
        ({"body": {"inputs": [[[0.1]]]}}, 'request body must be {"instances": [...]}; got [\'inputs\']'),
        ({"body": b"instances=1"}, "request body is not JSON"),
        ({"body": {"instances": {"B2": 1}}}, '"instances" must be a non-empty list'),
    ],
    ids=["empty-instances", "no-instances", "not-json", "instances-not-a-list"],
)
def test_malformed_bodies_are_400_with_a_message(tmp_path, row, message):
    handler, context = make_handler(tmp_path)
    with pytest.raises(PredictionException) as error:
        enveloped(handler, context, [row])
    assert error.value.error_code == 400
    assert message in error.value.message


def test_cpu_model_is_frozen_for_inference_with_the_same_answers(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 1, 1)).eval()
    handler, context = make_handler(tmp_path, model=model)
    assert list(handler.model.parameters()) == []  # weights folded into the frozen graph
    tile = np.random.default_rng(1).uniform(size=(2, 2, 9, 9)).astype(np.float32)
    with torch.inference_mode():
        want = model(torch.from_numpy(tile))[:, 0].numpy()
    np.testing.assert_allclose(np.asarray(handler.handle(tile.tolist(), context)), want, atol=1e-5)
