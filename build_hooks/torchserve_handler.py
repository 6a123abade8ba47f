"""TorchServe handler that answers the requests Earth Engine sends a PyTorch model.

Shipped inside model.mar with `ee_contract.json` (payload format, bands, limits). Vertex
AI's prebuilt PyTorch container runs TorchServe with the JSON service envelope, so each
element of `data` is one instance of `{"instances": [...]}`; without the envelope (plain
TorchServe) the handler unwraps the request bodies itself.

Payloads (Earth Engine, "Hosted Model Payload Formats"):
- ND_ARRAYS: an instance is the tile as nested lists, [bands][y][x], as numpy's tolist().
- RAW_JSON: an instance is {band: [[...]]}, every number sent as a JSON string.
A prediction is [y][x] for a one-value band and [y][x][values] for an array band;
RAW_JSON answers {band: ...}, ND_ARRAYS the single output band's array (Google's PyTorch
example, Earth_Engine_PyTorch_Vertex_AI.ipynb, answers `argmax(dim=1).tolist()`: [y][x]).

With an input overlap, each instance is tile_size + 2 * input_overlap pixels a side and
the answer is the centre output_tile_size of what the model computes.

On a GPU, TorchServe's BaseHandler loads the TorchScript model onto `cuda:<gpu_id>`
(`self.device`): the tiles go there, the outputs come back to the CPU before conversion.
"""

import gc
import json
import logging
import os

import numpy as np
import torch
from ts.torch_handler.base_handler import BaseHandler
from ts.torch_handler.request_envelope.json import JSONEnvelope
from ts.utils.util import PredictionException

logger = logging.getLogger(__name__)

CONTRACT_FILE = "ee_contract.json"
# Oversized payloads get 422: TorchServe's frontend turns a worker's 413 into a 507.
TOO_LARGE = 422


class EarthEngineHandler(BaseHandler):
    def initialize(self, context):
        super().initialize(context)
        model_dir = context.system_properties.get("model_dir")
        with open(os.path.join(model_dir, CONTRACT_FILE)) as handle:
            contract = json.load(handle)
        self.payload_format = contract["payload_format"]
        self.bands = contract["input_bands"]
        self.output_bands = contract["output_bands"]
        self.max_instances = int(contract["max_instances"])
        self.max_pixels = int(contract["max_pixels"])
        # Pixels dropped on each edge of the model's answer: the instance is the tile plus
        # the overlap on both edges, the answer is the centre output_tile_size.
        tile = int(contract.get("tile_size") or 0)
        overlap = int(contract.get("input_overlap") or 0)
        output = int(contract.get("output_tile_size") or tile)
        self.margin = (tile + 2 * overlap - output) // 2 if tile else 0
        self.torch_threads = int(os.environ.get("EEV_TORCH_THREADS", "0"))
        # Intra-op threads are a CPU setting; on a GPU they would only slow the host side.
        if self.torch_threads and self.device.type == "cpu":
            torch.set_num_threads(self.torch_threads)
        _strict_envelope()

    # -- request decoding ------------------------------------------------------------

    def _tile(self, instance, index):
        """One instance -> float32 array [bands, y, x], or a 400 naming what is wrong."""
        if self.payload_format == "ND_ARRAYS":
            if not isinstance(instance, list):
                raise PredictionException(
                    f"instance {index}: ND_ARRAYS expects nested lists [bands][y][x], "
                    f"got {type(instance).__name__}",
                    400,
                )
            try:
                tile = np.asarray(instance, dtype=np.float32)
            except (ValueError, TypeError) as error:
                raise PredictionException(
                    f"instance {index}: not a rectangular array of numbers ({error})", 400
                ) from None
        else:
            if not isinstance(instance, dict):
                raise PredictionException(
                    f"instance {index}: RAW_JSON expects an object keyed by band "
                    f"({', '.join(self.bands)}), got {type(instance).__name__}",
                    400,
                )
            missing = [b for b in self.bands if b not in instance]
            if missing:
                raise PredictionException(
                    f"instance {index}: missing band(s) {', '.join(missing)}; "
                    f"expected {', '.join(self.bands)}",
                    400,
                )
            try:
                tile = np.stack(
                    [np.asarray(instance[b], dtype=np.str_).astype(np.float32) for b in self.bands]
                )
            except (ValueError, TypeError) as error:
                raise PredictionException(
                    f"instance {index}: band values must be [y][x] numbers or numeric strings ({error})",
                    400,
                ) from None
        if tile.ndim != 3 or tile.shape[0] != len(self.bands):
            raise PredictionException(
                f"instance {index}: shape {list(tile.shape)}, expected "
                f"[{len(self.bands)} bands, y, x] for bands {', '.join(self.bands)}",
                400,
            )
        if tile.shape[1] * tile.shape[2] > self.max_pixels:
            raise PredictionException(
                f"instance {index}: {tile.shape[1]}x{tile.shape[2]} pixels is over the limit of "
                f"{self.max_pixels} per tile; use a smaller inputTileSize",
                TOO_LARGE,
            )
        return tile

    def preprocess(self, data):
        if not isinstance(data, list) or not data:
            raise PredictionException("expected a non-empty list of instances", 400)
        if len(data) > self.max_instances:
            raise PredictionException(
                f"{len(data)} instances in one batch is over the limit of {self.max_instances}", TOO_LARGE
            )
        tiles = [self._tile(instance, i) for i, instance in enumerate(data)]
        shapes = {t.shape for t in tiles}
        if len(shapes) == 1:
            return torch.from_numpy(np.stack(tiles))
        # Tiles of several sizes (edge tiles) run one by one.
        return [torch.from_numpy(t[None]) for t in tiles]

    def inference(self, data, *args, **kwargs):
        # The model is on self.device (cuda:<gpu_id> on a GPU); answers come back to the
        # CPU here, so the conversion to lists never sees a device tensor.
        device = self.device
        with torch.inference_mode():
            if isinstance(data, list):
                return [self._crop(self.model(t.to(device))[0], t.shape[-2:]).cpu() for t in data]
            return self._crop(self.model(data.to(device)), data.shape[-2:]).cpu()

    def _crop(self, values, size):
        """The centre of the model's [..., h, w] answer: margin pixels off each edge of the
        instance's own size (h, w)."""
        if not self.margin:
            return values
        want_h, want_w = max(size[0] - 2 * self.margin, 1), max(size[1] - 2 * self.margin, 1)
        h, w = values.shape[-2:]
        top, left = max((h - want_h) // 2, 0), max((w - want_w) // 2, 0)
        return values[..., top : top + min(h, want_h), left : left + min(w, want_w)]

    # -- response encoding -----------------------------------------------------------

    def _prediction(self, values):
        """[values, y, x] -> one instance's prediction in Earth Engine's layout."""
        pixels = np.moveaxis(values, 0, -1)  # [y, x, values], a view
        out, start = {}, 0
        for band in self.output_bands:
            part = pixels[..., start : start + band["length"]]
            start += band["length"]
            out[band["name"]] = _json_values(part[..., 0] if band["dimensions"] == 0 else part)
        if self.payload_format == "ND_ARRAYS":
            return out[self.output_bands[0]["name"]]
        return out

    def postprocess(self, data):
        if isinstance(data, list):
            return [self._prediction(t.numpy()) for t in data]
        return [self._prediction(t) for t in data.numpy()]

    def handle(self, data, context):
        self.context = context
        if _is_raw_request(data):
            # Plain TorchServe without the JSON envelope: one response per request.
            return [{"predictions": self._handle_instances(_instances(row))} for row in data]
        return self._handle_instances(data)

    def _handle_instances(self, instances):
        # A 256x256 answer is ~65k small lists; creating them sets off the cyclic garbage
        # collector again and again, each pass walking every live container (the request's
        # nested lists too): measured at 5-10x the cost of the conversion itself. Nothing
        # built here can form a cycle, so the collector waits until the request is done.
        collecting = gc.isenabled()
        gc.disable()
        try:
            return self.postprocess(self.inference(self.preprocess(instances)))
        finally:
            if collecting:
                gc.enable()


def _json_values(array):
    """Nested lists for JSON. NaN and infinities become null: the JSON envelope writes with
    json.dumps, which would emit the bare NaN/Infinity tokens no JSON parser accepts."""
    # tolist() on a contiguous copy is several times faster than on a strided view.
    array = np.ascontiguousarray(array)
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        logger.warning("the model answered NaN or infinite values; they are sent as null")
        return np.where(np.isfinite(array), array, None).tolist()
    return array.tolist()


def _parse_body(data):
    """One request of the JSON envelope -> its `instances`, or a 400 that says what is wrong.

    TorchServe's own JSONEnvelope indexes `["instances"][0]` unchecked, so an empty list, a
    body without `instances`, or a body that is not JSON (the worker then passes the raw
    bytes) would end as 503 "Prediction failed"."""
    body = (data.get("data") or data.get("body") or data) if isinstance(data, dict) else data
    if isinstance(body, (bytes, bytearray)):
        try:
            body = json.loads(body)
        except ValueError as error:
            raise PredictionException(f"request body is not JSON ({error})", 400) from None
    if not isinstance(body, dict) or "instances" not in body:
        got = sorted(body) if isinstance(body, dict) else type(body).__name__
        raise PredictionException(f'request body must be {{"instances": [...]}}; got {got}', 400)
    rows = body["instances"]
    if not isinstance(rows, list) or not rows:
        raise PredictionException('"instances" must be a non-empty list of tiles', 400)
    return rows


def _strict_envelope():
    """Make the prebuilt container's JSON envelope answer 400 for malformed bodies (it runs
    before the handler, so this is the only place to check them)."""
    JSONEnvelope._from_json = lambda self, data: _parse_body(data)


def _is_raw_request(data):
    return (
        isinstance(data, list)
        and bool(data)
        and isinstance(data[0], dict)
        and set(data[0]) <= {"body", "data"}
    )


def _instances(row):
    return _parse_body(row.get("body") if row.get("body") is not None else row.get("data"))
