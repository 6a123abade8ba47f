"""Earth Engine's side of the contract: the requests it sends for an image tile, and how
it reads the answers back into bands.

From Earth Engine's "Hosted Model Payload Formats Supported on Earth Engine":
- SERIALIZED_TF_TENSORS: every band is one key of each `instances` object; its value is a
  base64 serialized TensorProto (the tile's [y, x] values of that band).
- RAW_JSON: a JSON object of named inputs; every number is sent as a JSON string.
- ND_ARRAYS: RAW_JSON without keys: the numbers as numpy's tolist() gives them; the
  layout [bands][y][x] follows Earth Engine's PyTorch example, whose model takes NCHW.
- gRPC formats (TensorFlow only): the same tensors in a TensorFlow Serving PredictRequest.

TensorProtos are encoded here by hand (a few protobuf fields), so simulating Earth Engine
needs neither TensorFlow nor a protobuf schema.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Sequence

import numpy as np

DT_FLOAT = 1


def example_tiles(bands: Sequence[str], size: int, count: int = 1, seed: int = 0) -> np.ndarray:
    """`count` tiles [count, bands, size, size] of surface-reflectance-like values."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0.0, 0.5, size=(count, len(bands), size, size)).astype(np.float32)


# -- TensorProto, by hand ------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def tensor_proto(array: np.ndarray) -> bytes:
    """Serialize a float32 array as a TensorProto (dtype, tensor_shape, tensor_content)."""
    array = np.ascontiguousarray(array, dtype="<f4")
    shape = b"".join(_field(2, _varint(1 << 3 | 0) + _varint(d)) for d in array.shape)
    return _varint(1 << 3 | 0) + _varint(DT_FLOAT) + _field(2, shape) + _field(4, array.tobytes())


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _fields(data: bytes):
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(data, pos)
        elif wire == 2:
            length, pos = _read_varint(data, pos)
            value, pos = data[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = data[pos : pos + 4], pos + 4
        elif wire == 1:
            value, pos = data[pos : pos + 8], pos + 8
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def parse_tensor_proto(data: bytes) -> np.ndarray:
    """A float TensorProto -> numpy array."""
    dtype, dims, content, floats = None, [], b"", []
    for number, wire, value in _fields(data):
        if number == 1:
            dtype = value
        elif number == 2:
            for dim_number, _, dim in _fields(value):
                if dim_number == 2:
                    dims.append(next(v for n, _, v in _fields(dim) if n == 1) if dim else 0)
        elif number == 4:
            content = value
        elif number == 5:
            floats.extend(struct.unpack(f"<{len(value) // 4}f", value) if wire == 2 else [struct.unpack("<f", value)[0]])
    if dtype != DT_FLOAT:
        raise ValueError(f"expected a DT_FLOAT TensorProto, got dtype {dtype}")
    count = int(np.prod(dims)) if dims else 1
    if content:
        return np.frombuffer(content, dtype="<f4").reshape(dims).copy()
    values = np.asarray(floats, dtype=np.float32)
    return (np.full(count, values[0], np.float32) if values.size == 1 else values).reshape(dims)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    text = text.replace("-", "+").replace("_", "/")
    return base64.b64decode(text + "=" * (-len(text) % 4))


# -- requests and responses ------------------------------------------------------------


def request_body(payload_format: str, tiles: np.ndarray, bands: Sequence[str]) -> dict:
    """The HTTP predict body Earth Engine sends for tiles [N, bands, y, x]."""
    if payload_format == "ND_ARRAYS":
        return {"instances": tiles.tolist()}
    if payload_format == "RAW_JSON":
        return {
            "instances": [
                {b: np.char.mod("%.9g", tile[i]).tolist() for i, b in enumerate(bands)} for tile in tiles
            ]
        }
    if payload_format in ("SERIALIZED_TF_TENSORS", "GRPC_SERIALIZED_TF_TENSORS"):
        return {"instances": [{b: _b64(tensor_proto(tile[i])) for i, b in enumerate(bands)} for tile in tiles]}
    raise ValueError(f"{payload_format!r} has no HTTP JSON body; allowed: SERIALIZED_TF_TENSORS, RAW_JSON, ND_ARRAYS")


def tf_example(features: dict[str, np.ndarray]) -> bytes:
    """Serialize a tf.Example with one float list per feature (flattened row-major)."""
    entries = b""
    for name in sorted(features):
        values = np.ascontiguousarray(features[name], dtype="<f4").ravel()
        float_list = _field(1, values.tobytes())  # FloatList.value, packed
        feature = _field(2, float_list)  # Feature.float_list
        entries += _field(1, _field(1, name.encode()) + _field(2, feature))  # map entry
    return _field(1, entries)  # Example.features


def grpc_inputs(payload_format: str, tiles: np.ndarray, bands: Sequence[str]) -> dict[str, np.ndarray]:
    """The named tensors of the TensorFlow Serving PredictRequest Earth Engine sends."""
    if payload_format == "GRPC_TF_TENSORS":
        return {b: tiles[:, i].astype(np.float32) for i, b in enumerate(bands)}
    if payload_format == "GRPC_SERIALIZED_TF_TENSORS":
        return {b: np.asarray([_b64(tensor_proto(t[i])) for t in tiles], dtype=object) for i, b in enumerate(bands)}
    if payload_format == "GRPC_SERIALIZED_TF_EXAMPLES":
        examples = [tf_example({b: t[i] for i, b in enumerate(bands)}) for t in tiles]
        return {"input": np.asarray(examples, dtype=object)}
    raise ValueError(f"{payload_format!r} is not a gRPC payload format")


def decode_grpc_outputs(payload_format: str, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """PredictResponse tensors -> {band: [N, y, x(, length)]}."""
    if payload_format == "GRPC_SERIALIZED_TF_TENSORS":
        return {k: np.stack([parse_tensor_proto(_unb64(_text(v))) for v in vs]) for k, vs in outputs.items()}
    return {k: np.asarray(v, dtype=np.float32) for k, v in outputs.items()}


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def decode_predictions(payload_format: str, predictions: list, output_bands: Sequence[dict]) -> dict[str, np.ndarray]:
    """`predictions` of a predict response -> {band: [N, y, x] or [N, y, x, length]}."""
    names = [b["name"] for b in output_bands]
    if payload_format == "ND_ARRAYS":
        return {names[0]: np.asarray(predictions, dtype=np.float32)}
    rows = [p if isinstance(p, dict) else {names[0]: p} for p in predictions]
    out = {}
    for name in names:
        values = [row[name] for row in rows]
        if payload_format == "RAW_JSON":
            out[name] = np.asarray(values, dtype=np.float32)
        else:
            out[name] = np.stack([parse_tensor_proto(_unb64(v)) for v in values])
    return out


def reference_outputs(values: np.ndarray, output_bands: Sequence[dict]) -> dict[str, np.ndarray]:
    """Split a model's [N, y, x, values] into Earth Engine's output bands."""
    out, start = {}, 0
    for band in output_bands:
        part = values[..., start : start + band["length"]]
        start += band["length"]
        out[band["name"]] = part[..., 0] if band["dimensions"] == 0 else part
    return out
