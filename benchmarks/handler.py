"""Earth Engine tile requests through our TorchServe handler, a naive per-pixel handler, and
the model's forward pass alone, measured side by side in one process.

Both handlers run exactly as TorchServe's worker runs them behind Vertex AI's JSON
envelope: the envelope parses the request body and hands the handler the `instances`; the
handler's return value is serialized into `{"predictions": ...}`. That JSON work is the
same whatever the handler, so it is measured once, apart, and shown both ways.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from build_hooks import earth_engine as ee

BANDS = ("B2", "B3", "B4", "B5", "B6", "B7")


def builtin_model():
    from build_hooks.examples import pytorch_landcover

    return "built-in example (per-pixel, 1x1 convs, 16 hidden)", pytorch_landcover().model


def fcn_model():
    """A small fully convolutional segmentation net, the size of a real per-tile model."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    layers, channels = [], len(BANDS)
    for width in (32, 32, 32, 32):
        layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU()]
        channels = width
    layers += [nn.Conv2d(channels, 3, 1), nn.Softmax(dim=1)]
    return "FCN (4x 3x3 conv, 32 channels)", nn.Sequential(*layers).eval()


class NaiveHandler:
    """What a first handler usually looks like: Python loops over pixels both ways."""

    def __init__(self, model):
        self.model = model

    def handle(self, instances):
        import torch

        out = []
        for instance in instances:
            bands, height, width = len(instance), len(instance[0]), len(instance[0][0])
            pixels = [[float(instance[b][y][x]) for b in range(bands)] for y in range(height) for x in range(width)]
            tensor = torch.tensor(pixels).T.reshape(1, bands, height, width)
            with torch.inference_mode():
                probabilities = self.model(tensor)[0].numpy()
            out.append([[probabilities[:, y, x].tolist() for x in range(width)] for y in range(height)])
        return out


def our_handler(model, workdir: Path):
    """build_hooks/torchserve_handler.py, initialized by TorchServe's own Context."""
    import torch
    from ts.context import Context

    from build_hooks.torchserve_handler import CONTRACT_FILE, EarthEngineHandler

    torch.jit.save(torch.jit.script(model), str(workdir / "model.pt"))
    contract = {
        "payload_format": "ND_ARRAYS", "input_bands": list(BANDS),
        "output_bands": [{"name": "probabilities", "dimensions": 1, "length": 3}],
        "max_instances": 64, "max_pixels": 1 << 20,
    }
    (workdir / CONTRACT_FILE).write_text(json.dumps(contract))
    manifest = {"model": {"modelName": "model", "serializedFile": "model.pt", "handler": "handler.py"}}
    context = Context("model", str(workdir), manifest, 1, None, "0.12.0", model_yaml_config={})
    handler = EarthEngineHandler()
    handler.initialize(context)
    return handler, context


@dataclass
class HandlerResult:
    model: str
    tile: int
    forward: float
    ours: float
    naive: float
    envelope: float

    def lines(self) -> list[str]:
        ours_request, naive_request = self.envelope + self.ours, self.envelope + self.naive
        return [
            f"{self.model}, one {self.tile}x{self.tile} tile of {len(BANDS)} bands per request (ND_ARRAYS):",
            f"  forward pass alone            {self.forward * 1e3:8.1f} ms",
            f"  our handler                   {self.ours * 1e3:8.1f} ms   {self.ours / self.forward:5.2f}x the forward pass"
            f"   (target <= 1.2x: {'met' if self.ours / self.forward <= 1.2 else 'NOT met'})",
            f"  naive per-pixel handler       {self.naive * 1e3:8.1f} ms   {self.naive / self.ours:5.1f}x slower than ours"
            f"   (target >= 5x: {'met' if self.naive / self.ours >= 5 else 'NOT met'})",
            f"  JSON envelope (any handler)   {self.envelope * 1e3:8.1f} ms   parse the request, serialize the predictions",
            f"  requests/s with the envelope  ours {1 / ours_request:6.2f}, naive {1 / naive_request:6.2f}:"
            f" {naive_request / ours_request:4.1f}x",
            f"  time outside the forward pass: {1 - self.forward / self.ours:4.0%} of our handler,"
            f" {1 - self.forward / ours_request:4.0%} of a whole request",
        ]


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def run(tile: int = 256, repeats: int = 7) -> list[HandlerResult]:
    import torch

    results = []
    for make in (builtin_model, fcn_model):
        name, model = make()
        with tempfile.TemporaryDirectory() as workdir:
            handler, context = our_handler(model, Path(workdir))
            naive = NaiveHandler(handler.model)  # the same TorchScript model
            tiles = ee.example_tiles(BANDS, tile, count=1, seed=3)
            body = json.dumps(ee.request_body("ND_ARRAYS", tiles, BANDS)).encode()
            instances = json.loads(body)["instances"]
            tensor = torch.from_numpy(tiles)

            def forward():
                with torch.inference_mode():
                    handler.model(tensor)

            # Same answers, or the comparison means nothing.
            ours_out = handler.handle(instances, context)
            naive_out = naive.handle(instances)
            assert np.allclose(np.asarray(ours_out), np.asarray(naive_out), atol=1e-6)

            def envelope():
                json.loads(body)
                json.dumps({"predictions": ours_out})

            forward()  # warm up
            times = {"forward": [], "ours": [], "naive": [], "envelope": []}
            for _ in range(repeats):  # interleaved, so drift hits every variant alike
                times["forward"].append(_median_time(forward, 3))
                times["ours"].append(_median_time(lambda: handler.handle(instances, context), 1))
                times["naive"].append(_median_time(lambda: naive.handle(instances), 1))
                times["envelope"].append(_median_time(envelope, 1))
            results.append(HandlerResult(name, tile, **{k: statistics.median(v) for k, v in times.items()}))
    return results
