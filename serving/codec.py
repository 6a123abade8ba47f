"""Earth Engine's requests in, the model's answers out: the served half of the contract for
the JSON payload formats (ND_ARRAYS, RAW_JSON), shared by our server
(`serving.pytorch_server`) and the TorchServe handler of the prebuilt images.

What Earth Engine sends ("Hosted Model Payload Formats Supported on Earth Engine"; Google's
PyTorch notebook Earth_Engine_PyTorch_Vertex_AI.ipynb):
- ND_ARRAYS: `{"instances": [tile, ...]}`, each tile nested lists `[bands][y][x]`.
- RAW_JSON: each tile `{band: [y][x]}`, every number written as a JSON string.
- Each tile is `inputTileSize + 2 * inputOverlapSize` pixels a side, and Earth Engine puts
  as many tiles in one request as fit in `maxPayloadBytes`.
What it reads back: one prediction per tile, `[y][x]` for a `dimensions: 0` band (the
notebook answers `argmax(dim=1).tolist()`), `[y][x][n]` for an array band; ND_ARRAYS answers
its one output band bare, RAW_JSON `{band: ...}`. Each answer is `outputTileSize` a side:
the centre of what the model computes.

Standard library and numpy only: the serving images and the TorchServe archive carry this
file as it is. Every refusal is a `RequestError` with an HTTP status and a message that names
what was wrong and what the model takes; nothing a client sends makes a 5xx.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

try:  # in our serving images; optional in a prebuilt image
    import orjson
except ImportError:  # pragma: no cover - exercised by the stdlib-json test variant
    orjson = None

CONTRACT_FILE = "ee_contract.json"
ENVELOPE = len('{"instances":[]}')

# ee.PixelType's constructors (earthengine-api python/ee/pixeltype.py) -> the dtype the
# answer is written in. Earth Engine reads each band as the type the snippet declares.
PIXEL_TYPES = {
    "float": np.float32,
    "double": np.float64,
    "int8": np.int8,
    "uint8": np.uint8,
    "int16": np.int16,
    "uint16": np.uint16,
    "int32": np.int32,
    "uint32": np.uint32,
    "int64": np.int64,
}


class RequestError(ValueError):
    """A request the model cannot answer: HTTP `status` (4xx) and a message for the caller."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Band:
    name: str
    dimensions: int = 0
    length: int = 1
    type: str = "float"


@dataclass(frozen=True)
class Contract:
    """What the served model takes and answers (the artifact's ee_contract.json)."""

    payload_format: str
    input_bands: tuple[str, ...]
    output_bands: tuple[Band, ...]
    tile_size: int
    input_overlap: int = 0
    output_tile_size: int | None = None
    max_payload_bytes: int = 1_500_000
    batch: int | None = None
    """1 where the model was exported for one tile per call (its batch cannot vary)."""

    @classmethod
    def from_dict(cls, data: dict) -> Contract:
        return cls(
            payload_format=data["payload_format"],
            input_bands=tuple(data["input_bands"]),
            output_bands=tuple(Band(**band) for band in data["output_bands"]),
            tile_size=int(data["tile_size"]),
            input_overlap=int(data.get("input_overlap") or 0),
            output_tile_size=int(data["output_tile_size"]) if data.get("output_tile_size") else None,
            max_payload_bytes=int(data.get("max_payload_bytes") or 1_500_000),
            batch=int(data["batch"]) if data.get("batch") else None,
        )

    @classmethod
    def read(cls, path) -> Contract:
        with open(path) as handle:
            return cls.from_dict(json.load(handle))

    @property
    def instance_size(self) -> int:
        return self.tile_size + 2 * self.input_overlap

    @property
    def answer_size(self) -> int:
        return self.output_tile_size or self.tile_size

    @property
    def margin(self) -> int:
        """Pixels the answer drops on each edge of what the model computes."""
        return (self.instance_size - self.answer_size) // 2

    @property
    def output_values(self) -> int:
        return sum(band.length for band in self.output_bands)

    @property
    def max_instances(self) -> int:
        """The most tiles one request can hold: as many as fit in maxPayloadBytes with every
        value at its shortest (one digit and a comma). Earth Engine fills requests up to
        maxPayloadBytes, so any smaller cap would refuse requests it really sends."""
        side = self.instance_size
        if self.payload_format == "RAW_JSON":
            keys = sum(len(name) + 3 for name in self.input_bands) + len(self.input_bands) + 1
            per = keys + len(self.input_bands) * _json_array_len((side, side), 3)
        else:
            per = _json_array_len((len(self.input_bands), side, side), 1)
        return max(1, 1 + (self.max_payload_bytes - ENVELOPE - per) // (per + 1))

    def takes(self) -> str:
        """What one instance must be, for messages."""
        side = self.instance_size
        overlap = f" + 2 x inputOverlapSize {self.input_overlap}" if self.input_overlap else ""
        return (
            f"{side}x{side} pixels (inputTileSize {self.tile_size}{overlap}) of "
            f"{len(self.input_bands)} bands ({', '.join(self.input_bands)})"
        )


def _json_array_len(shape: tuple[int, ...], item: int) -> int:
    length = item
    for d in reversed(shape):
        length = 2 + d * length + (d - 1)
    return length


# -- the request ------------------------------------------------------------------------


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def loads(body: bytes | str):
    """JSON text -> Python values, refusing NaN/Infinity (not JSON) and numbers beyond a
    double (1e400), which the standard library would read as infinities."""
    if orjson is not None:
        return orjson.loads(body)
    return json.loads(body, parse_constant=_reject_constant)


def instances_of(body) -> list:
    """A request body (bytes, or already parsed JSON) -> its non-empty `instances`."""
    if isinstance(body, (bytes, bytearray, memoryview, str)):
        if not len(body):
            raise RequestError('the request body is empty; send {"instances": [...]} as JSON')
        try:
            body = loads(bytes(body) if isinstance(body, memoryview) else body)
        except ValueError as error:
            raise RequestError(f"the request body is not JSON ({error})") from None
    if not isinstance(body, dict) or "instances" not in body:
        got = f"an object with keys {sorted(body)}" if isinstance(body, dict) else f"a JSON {_kind(body)}"
        raise RequestError(f'the request body must be {{"instances": [...]}}; got {got}')
    instances = body["instances"]
    if not isinstance(instances, list) or not instances:
        raise RequestError(f'"instances" must be a non-empty list of tiles; got {_describe(instances)}')
    return instances


def _kind(value) -> str:
    if value is None:
        return "null"
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}.get(
        type(value), type(value).__name__
    )


def _describe(value) -> str:
    if isinstance(value, list):
        return "an empty list"
    return f"a JSON {_kind(value)}"


def decode(contract: Contract, instances: list) -> np.ndarray:
    """The instances -> one float32 array [N, bands, y, x], or a RequestError naming the
    first instance that is not a tile this model takes."""
    count = len(instances)
    if count > contract.max_instances:
        raise RequestError(
            f"{count} instances in one request; at most {contract.max_instances} tiles of "
            f"{contract.instance_size}x{contract.instance_size} fit in maxPayloadBytes "
            f"{contract.max_payload_bytes:,}",
            413,
        )
    side, bands = contract.instance_size, len(contract.input_bands)
    batch = np.empty((count, bands, side, side), dtype=np.float32)
    for index, instance in enumerate(instances):
        batch[index] = _tile(contract, instance, index)
    bad = ~np.isfinite(batch)
    if bad.any():
        index, band, y, x = (int(i) for i in np.argwhere(bad)[0])
        raise RequestError(
            f"instance {index}: {int(bad[index].sum())} value(s) are not finite float32 numbers "
            f"(first: band {contract.input_bands[band]} at y={y}, x={x}); allowed: finite numbers "
            "within float32's range (unmask or fill the image before predicting)"
        )
    return batch


def _tile(contract: Contract, instance, index: int) -> np.ndarray:
    side, names = contract.instance_size, contract.input_bands
    if contract.payload_format == "RAW_JSON":
        if not isinstance(instance, dict):
            raise RequestError(
                f"instance {index}: RAW_JSON sends an object keyed by band "
                f"({', '.join(names)}); got {_describe(instance)}"
            )
        missing = [b for b in names if b not in instance]
        extra = sorted(set(instance) - set(names))
        if missing or extra:
            parts = [f"missing band(s) {', '.join(missing)}"] if missing else []
            parts += [f"unknown band(s) {', '.join(extra)}"] if extra else []
            raise RequestError(f"instance {index}: {'; '.join(parts)}; this model takes {', '.join(names)}")
        arrays = [_numbers(instance[b], index, f"band {b}", strings=True) for b in names]
        if len({a.shape for a in arrays}) > 1:
            shapes = {b: list(a.shape) for b, a in zip(names, arrays, strict=True)}
            raise RequestError(
                f"instance {index}: the bands differ in shape ({shapes}); this model takes {contract.takes()}"
            )
        tile = np.stack(arrays)
    else:
        if not isinstance(instance, list):
            raise RequestError(
                f"instance {index}: ND_ARRAYS sends nested lists [bands][y][x]; got {_describe(instance)}"
            )
        tile = _numbers(instance, index, "the tile", strings=False)
    if tile.ndim != 3 or tile.shape != (len(names), side, side):
        shown = "x".join(str(d) for d in tile.shape) if tile.ndim else "a single number"
        raise RequestError(
            f"instance {index}: a {shown} array ([bands, y, x]); this model takes {contract.takes()}, "
            f"i.e. [{len(names)}, {side}, {side}]: set inputTileSize and inputOverlapSize in "
            "ee.Model.fromVertexAi as the endpoint's earth_engine_model output says"
        )
    return tile


def _numbers(value, index: int, what: str, *, strings: bool) -> np.ndarray:
    refused = RequestError(
        f"instance {index}: {what} is not a rectangular array of "
        f"{'numbers written as strings (or plain numbers)' if strings else 'numbers'} "
        "(ragged lists, null, booleans or text are refused)"
    )
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):
        raise refused from None
    if strings and array.dtype.kind == "U":
        try:
            array = array.astype(np.float64)
        except ValueError:
            raise refused from None
    if array.dtype.kind not in "iuf":
        raise refused
    with np.errstate(over="ignore"):
        return array.astype(np.float32)


# -- the answer -------------------------------------------------------------------------


def crop(contract: Contract, values: np.ndarray) -> np.ndarray:
    """The centre `outputTileSize` of the model's [N, values, h, w] answer (an answer that
    is already that size is kept)."""
    margin = contract.margin
    if not margin or values.shape[-1] == contract.answer_size:
        return values
    return values[..., margin : margin + contract.answer_size, margin : margin + contract.answer_size]


def check_answer(contract: Contract, values: np.ndarray) -> None:
    """The model's [N, values, y, x] must carry the declared bands; raise ValueError (a
    model fault, not the caller's) if not."""
    size = contract.answer_size
    if values.ndim != 4 or values.shape[1] != contract.output_values or values.shape[2:] != (size, size):
        raise ValueError(
            f"the model answered shape {list(values.shape)}; the artifact declares "
            f"[N, {contract.output_values}, {size}, {size}]"
        )


def predictions(contract: Contract, values: np.ndarray) -> list:
    """[N, values, y, x] -> one prediction per tile in Earth Engine's layout, each band in
    its declared pixel type (numpy arrays when orjson writes them, else nested lists); NaN
    and infinities of a float band become null, which any JSON parser reads."""
    pixels = np.moveaxis(values, 1, -1)  # [N, y, x, values], a view
    parts, start = [], 0
    for band in contract.output_bands:
        part = pixels[..., start : start + band.length]
        start += band.length
        parts.append((band, _typed(part[..., 0] if band.dimensions == 0 else part, band)))
    out = []
    for i in range(values.shape[0]):
        row = {band.name: _json_ready(array[i]) for band, array in parts}
        out.append(row[contract.output_bands[0].name] if contract.payload_format == "ND_ARRAYS" else row)
    return out


def _typed(array: np.ndarray, band: Band) -> np.ndarray:
    dtype = np.dtype(PIXEL_TYPES[band.type])
    if dtype.kind in "iu" and array.dtype.kind == "f":
        array = np.rint(array)
    return np.ascontiguousarray(array, dtype=dtype)


def _json_ready(array: np.ndarray):
    if orjson is not None:
        return array
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        return np.where(np.isfinite(array), array, None).tolist()
    return array.tolist()


def dumps(value) -> bytes:
    """JSON bytes; numpy arrays written directly by orjson (NaN as null)."""
    if orjson is not None:
        return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)
    return json.dumps(value, allow_nan=False).encode()


def error_body(message: str) -> bytes:
    """A refusal's body, in TensorFlow Serving's REST shape (`{"error": ...}`), which our
    own images use for every framework."""
    return dumps({"error": message})
