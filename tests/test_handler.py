"""The model side of both servers in-process: on a GPU the tiles go to the model's device and
the answers come back to the CPU (simulated with the `meta` device, which holds no data, so
the conversion fails unless the answer goes through the CPU), CPU threads only on a CPU, and
TorchScript frozen for the CPU with the same answers."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import torch
from serving_support import PixelSum, body, export, tile
from torch import nn
from ts.context import Context
from ts.torch_handler.base_handler import BaseHandler

from serving.pytorch_server import Model
from serving.torchserve_handler import EarthEngineHandler


class OnDevice(nn.Module):
    """A model on a device: its inputs must be on that device, its answers are there."""

    def __init__(self, device):
        super().__init__()
        self.device = device
        self.seen = []

    def forward(self, x):
        self.seen.append(x.device)
        if x.device != self.device:
            raise RuntimeError(f"Expected all tensors to be on the same device, got {x.device} and {self.device}")
        return torch.empty((x.shape[0], 1) + tuple(x.shape[2:]), device=self.device)


def _meta_to_cpu(monkeypatch):
    """meta tensors hold no data: moving one to the CPU stands in with zeros."""
    moved = []
    original = torch.Tensor.to

    def to(tensor, *args, **kwargs):
        target = args[0] if args else kwargs.get("device")
        if tensor.is_meta and str(target) == "cpu":
            moved.append(tensor.device)
            return torch.zeros(tensor.shape)
        return original(tensor, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "to", to)
    monkeypatch.setattr(torch.Tensor, "cpu", lambda t: to(t, "cpu"))
    return moved


def test_our_server_sends_tiles_to_the_models_device_and_answers_from_the_cpu(tmp_path, monkeypatch):
    model = Model(export(tmp_path), device=torch.device("cpu"))
    meta = torch.device("meta")
    model.device, model.module = meta, OnDevice(meta)
    moved = _meta_to_cpu(monkeypatch)
    answer = json.loads(model.predict(body(tile(2).tolist())))
    assert model.module.seen == [meta] and moved == [meta]
    assert np.asarray(answer["predictions"]).shape == (2, 8, 8)


def test_our_server_answers_the_same_on_any_device_it_is_given(tmp_path):
    """The program moves to the serving device with torch.export's move_to_device_pass; on
    this machine the CPU (the GPU run is in the README)."""
    folder = export(tmp_path)
    tiles = tile(3, seed=2)
    answers = [
        np.asarray(json.loads(Model(folder, device=torch.device(d)).predict(body(tiles.tolist())))["predictions"])
        for d in ["cpu"] + (["cuda:0"] if torch.cuda.is_available() else [])
    ]
    for answer in answers:
        np.testing.assert_allclose(answer, tiles.sum(axis=1), rtol=1e-6)


def torchserve_handler(tmp_path, model=None):
    folder = export(tmp_path / "artifact", model or PixelSum(), mar=True)
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(folder / "model.mar") as archive:
        archive.extractall(unpacked)
    manifest = json.loads((unpacked / "MAR-INF" / "MANIFEST.json").read_text())
    context = Context("model", str(unpacked), manifest, 1, None, "0.12.0", model_yaml_config={})
    handler = EarthEngineHandler()
    handler.initialize(context)
    return handler, context


def test_the_torchserve_handler_sends_tiles_to_the_models_device(tmp_path, monkeypatch):
    handler, context = torchserve_handler(tmp_path)
    meta = torch.device("meta")
    handler.device = meta  # as BaseHandler sets cuda:<gpu_id> when TorchServe gives the worker a GPU
    handler.model = OnDevice(meta)
    moved = _meta_to_cpu(monkeypatch)
    predictions = handler.handle(tile(2).tolist(), context)
    assert handler.model.seen == [meta] and moved == [meta]
    assert np.asarray(predictions).shape == (2, 8, 8)


def test_cpu_threads_only_on_cpu(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    monkeypatch.setenv("EEV_TORCH_THREADS", "3")
    torchserve_handler(tmp_path / "a")
    assert calls == [3]

    original = BaseHandler.initialize

    def on_gpu(self, context):
        original(self, context)
        self.device = torch.device("cuda:0")

    calls.clear()
    monkeypatch.setattr(BaseHandler, "initialize", on_gpu)
    torchserve_handler(tmp_path / "b")
    assert calls == []


def test_our_server_shares_the_cores_among_its_workers(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    monkeypatch.delenv("EEV_TORCH_THREADS", raising=False)
    monkeypatch.setenv("WEB_CONCURRENCY", "2")
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(8)))
    Model(export(tmp_path), device=torch.device("cpu"))
    assert calls == [4]


def test_cpu_model_is_frozen_for_inference_with_the_same_answers(tmp_path):
    torch.manual_seed(0)

    class ConvNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 1, 1))

        def forward(self, x):
            return self.layers(x)

    model = ConvNet().eval()
    handler, context = torchserve_handler(tmp_path, model)
    assert list(handler.model.parameters()) == []  # weights folded into the frozen graph
    tiles = tile(2, seed=1)
    with torch.inference_mode():
        want = model(torch.from_numpy(tiles))[:, 0].numpy()
    np.testing.assert_allclose(np.asarray(handler.handle(tiles.tolist(), context)), want, atol=1e-5)


@pytest.mark.parametrize("json_library", ["orjson", "stdlib-json"])
def test_nan_answers_never_make_invalid_json(tmp_path, monkeypatch, json_library):
    from serving import codec

    if json_library == "stdlib-json":
        monkeypatch.setattr(codec, "orjson", None)

    class Broken(nn.Module):
        def forward(self, x):
            out = x[:, :1].clone()
            out[:, :, 0, 0] = float("nan")
            out[:, :, 0, 1] = float("inf")
            return out

    model = Model(export(tmp_path, Broken()), device=torch.device("cpu"))
    text = model.predict(body(tile(1).tolist()))
    answer = json.loads(text, parse_constant=lambda name: pytest.fail(f"invalid JSON token {name}"))
    assert answer["predictions"][0][0][:2] == [None, None]
