"""Earth Engine's side of the contract: the requests it sends for image tiles, and how it
reads the answers back into bands.

The public API, for the rehearsal and the checks (`Contract` from a config and manifest):
    contract = Contract.from_config(rollout.model, manifest)
    tiles = contract.example_tiles(count=3, seed=1)       # {band: [N, s, s] or [N, s, s, k]}
    for batch in contract.requests(tiles):                 # each <= max_payload_bytes
        status, body = post(url, batch.body)               # HTTP formats: the JSON bytes
        # gRPC formats: batch.inputs (named tensors), or batch.rest_body() for a REST URL
        got = contract.read_predictions(batch, body["predictions"])   # checked, {band: array}
        # got[band] holds tiles [batch.first, batch.first + batch.count)
    want = verify.reference(rollout, contract, tiles)     # the framework model's own answer

From Earth Engine's "Hosted Model Payload Formats Supported on Earth Engine" and Google's
notebooks (earthengine-community, guides/linked):
- SERIALIZED_TF_TENSORS: every band is one key of each `instances` object; its value is a
  web-safe base64 serialized float32 TensorProto: [y, x, 1] for a scalar band, [y, x, N] for
  an array band (the notebooks decode with tf.io.decode_base64, which reads the web-safe
  alphabet, and concatenate bands on axis 3 of [batch, y, x, 1]).
- RAW_JSON: a JSON object of named inputs; every number is sent as a JSON string.
- ND_ARRAYS: RAW_JSON without keys: nested lists [bands][y][x] (Google's PyTorch example
  feeds them to torch.as_tensor and Conv2d(in_channels=len(BANDS))).
- gRPC formats (TensorFlow only): the same tensors in a TensorFlow Serving PredictRequest.
- An instance is inputTileSize + 2 * inputOverlapSize pixels a side; each answer is
  outputTileSize a side (see config/payload.py for the sources).
- Numbers as JSON text: the shortest text that reads back as the same float32 ("%.9g").
  What Earth Engine itself writes is not published; this is within the payload budget's
  worst case.

TensorProtos are encoded here by hand (a few protobuf fields), so simulating Earth Engine
needs neither TensorFlow nor a protobuf schema.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from config import payload

DT_FLOAT = 1


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


def _fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
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


def _bytes(value: int | bytes) -> bytes:
    """A length-delimited or fixed-width field's payload (a varint there: a malformed TensorProto)."""
    if isinstance(value, int):
        raise ValueError("malformed TensorProto: a varint where a length-delimited field belongs")
    return value


def _int(value: int | bytes) -> int:
    """A varint field's value (bytes there: a malformed TensorProto)."""
    if isinstance(value, bytes):
        raise ValueError("malformed TensorProto: bytes where a varint belongs")
    return value


def parse_tensor_proto(data: bytes) -> np.ndarray:
    """A float TensorProto -> numpy array."""
    dtype: int | bytes | None = None
    dims: list[int] = []
    content = b""
    floats: list[float] = []
    for number, wire, value in _fields(data):
        if number == 1:
            dtype = value
        elif number == 2:
            for dim_number, _, dim in _fields(_bytes(value)):
                if dim_number == 2:
                    dims.append(next(_int(v) for n, _, v in _fields(_bytes(dim)) if n == 1) if dim else 0)
        elif number == 4:
            content = _bytes(value)
        elif number == 5:
            raw = _bytes(value)
            floats.extend(struct.unpack(f"<{len(raw) // 4}f", raw) if wire == 2 else [struct.unpack("<f", raw)[0]])
    if dtype != DT_FLOAT:
        raise ValueError(f"expected a DT_FLOAT TensorProto, got dtype {dtype!r}")
    count = int(np.prod(dims)) if dims else 1
    if content:
        return np.frombuffer(content, dtype="<f4").reshape(dims).copy()
    values = np.asarray(floats, dtype=np.float32)
    return (np.full(count, values[0], np.float32) if values.size == 1 else values).reshape(dims)


def _b64(data: bytes) -> str:
    """Web-safe base64, as tf.io.encode_base64 writes and Google's notebooks decode."""
    return base64.urlsafe_b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    text = text.replace("-", "+").replace("_", "/")
    return base64.b64decode(text + "=" * (-len(text) % 4))


def decode_tensor(text: str) -> np.ndarray:
    """A base64 (web-safe or standard) float TensorProto, as the TensorFlow formats carry
    each band, -> its array."""
    return parse_tensor_proto(_unb64(text))


# -- numbers as text, tf.Example ------------------------------------------------------


def float32_text(array: np.ndarray) -> np.ndarray:
    """Each float32 as the shortest decimal text that reads back as the same float32."""
    return np.char.mod("%.9g", np.asarray(array, dtype=np.float32))


def tf_example(features: dict[str, np.ndarray]) -> bytes:
    """Serialize a tf.Example with one float list per feature (flattened row-major)."""
    entries = b""
    for name in sorted(features):
        values = np.ascontiguousarray(features[name], dtype="<f4").ravel()
        float_list = _field(1, values.tobytes())  # FloatList.value, packed
        feature = _field(2, float_list)  # Feature.float_list
        entries += _field(1, _field(1, name.encode()) + _field(2, feature))  # map entry
    return _field(1, entries)  # Example.features


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# -- the contract: requests split at maxPayloadBytes, answers validated ---------------


HTTP_FORMATS = ("ND_ARRAYS", "RAW_JSON", "SERIALIZED_TF_TENSORS")


class ContractError(ValueError):
    """An answer that is not what Earth Engine expects; the message says how it differs."""


@dataclass(frozen=True)
class Batch:
    """One request Earth Engine sends: tiles [first, first + count) of the call."""

    payload_format: str
    first: int
    count: int
    body: bytes | None
    """HTTP formats: the request body, exactly as sent (at most max_payload_bytes)."""
    inputs: dict | None
    """gRPC formats: the PredictRequest's named tensors."""

    def rest_body(self) -> bytes:
        """What to POST to a REST predict URL (a local server, a REST-only emulator): the
        body itself for an HTTP format; for a gRPC format the same tensors in TensorFlow
        Serving's REST row encoding, one object per instance, bytes as {"b64": ...}."""
        if self.body is not None:
            return self.body
        if self.inputs is None:
            raise ValueError(f"batch at tile {self.first}: neither a body nor named tensors")
        rows = []
        for i in range(self.count):
            row: dict[str, object] = {}
            for name, tensor in self.inputs.items():
                value = tensor[i]
                if isinstance(value, bytes):
                    row[name] = {"b64": base64.b64encode(value).decode("ascii")}
                elif isinstance(value, str):
                    row[name] = value
                else:
                    row[name] = np.asarray(value).tolist()
            rows.append(row)
        return json.dumps({"instances": rows}).encode()


@dataclass(frozen=True)
class Contract(payload.TileSides):
    """What Earth Engine knows of a hosted model: the `ee.Model.fromVertexAi` arguments."""

    payload_format: str
    input_bands: tuple[str, ...]
    band_lengths: tuple[int, ...]
    """Values per pixel of each input band (1 for a scalar band)."""
    output_bands: tuple[dict, ...]
    """{"name", "dimensions", "length"} per output band, in the model's value order."""
    tile_size: int
    input_overlap: int = 0
    output_tile_size: int | None = None
    max_payload_bytes: int = payload.DEFAULT_MAX_PAYLOAD_BYTES

    @classmethod
    def from_config(cls, model, manifest) -> Contract:
        """From a config's ModelConfig and the artifact's Manifest."""
        bands = tuple(manifest.input_bands)
        return cls(
            payload_format=manifest.payload_format,
            input_bands=bands,
            band_lengths=tuple(model.input_shapes.get(b, 1) for b in bands),
            output_bands=tuple(b.model_dump() for b in manifest.output_bands),
            tile_size=model.tile_size,
            input_overlap=model.input_overlap,
            output_tile_size=model.output_tile_size,
            max_payload_bytes=model.max_payload_bytes,
        )

    @property
    def sides(self) -> str:
        """For messages: '48x48', or '48x48 -> 32x32' where the answer is the instance's centre."""
        side, answer = self.instance_size, self.answer_size
        return f"{side}x{side}" + (f" -> {answer}x{answer}" if answer != side else "")

    @property
    def layout(self) -> payload.Layout:
        return payload.Layout(tuple(zip(self.input_bands, self.band_lengths, strict=True)), self.instance_size)

    # -- what Earth Engine sends ------------------------------------------------------

    def example_tiles(self, count: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
        """`count` tiles of surface-reflectance-like values: {band: [N, s, s] or [N, s, s, k]}."""
        rng = np.random.default_rng(seed)
        side = self.instance_size
        return {
            b: rng.uniform(0.0, 0.5, size=(count, side, side) + ((n,) if n > 1 else ())).astype(np.float32)
            for b, n in zip(self.input_bands, self.band_lengths, strict=True)
        }

    def model_input(self, tiles: dict[str, np.ndarray]) -> np.ndarray:
        """The tiles as one channels-last array [N, s, s, values], bands in order."""
        return np.concatenate([_channels(tiles[b], 3) for b in self.input_bands], axis=-1)

    def _instance(self, tiles: dict[str, np.ndarray], i: int) -> str:
        fmt = self.payload_format
        if fmt == "ND_ARRAYS":
            stacked = np.stack([tiles[b][i] for b in self.input_bands])  # [bands, y, x]
            return _json_text(stacked)
        if fmt == "RAW_JSON":
            parts = (f"{json.dumps(b)}:{_json_text(tiles[b][i], quoted=True)}" for b in self.input_bands)
            return "{" + ",".join(parts) + "}"
        parts = (f'{json.dumps(b)}:"{_b64(tensor_proto(_channels(tiles[b][i], 2)))}"' for b in self.input_bands)
        return "{" + ",".join(parts) + "}"

    def _grpc_inputs(self, tiles: dict[str, np.ndarray], start: int, stop: int) -> dict:
        fmt = self.payload_format
        if fmt == "GRPC_TF_TENSORS":
            return {b: _channels(tiles[b][start:stop], 3) for b in self.input_bands}
        if fmt == "GRPC_SERIALIZED_TF_TENSORS":
            return {
                b: np.asarray([_b64(tensor_proto(_channels(t, 2))) for t in tiles[b][start:stop]], dtype=object)
                for b in self.input_bands
            }
        examples = [tf_example({b: tiles[b][i] for b in self.input_bands}) for i in range(start, stop)]
        return {"input": np.asarray(examples, dtype=object)}

    def requests(self, tiles: dict[str, np.ndarray]) -> list[Batch]:
        """The requests Earth Engine sends for these tiles: as many tiles per request as
        fit in max_payload_bytes (HTTP: measured on the real body; gRPC: the budget's
        worst case). A single tile over the limit is payload.PayloadTooLarge."""
        count = len(tiles[self.input_bands[0]])
        for b, n in zip(self.input_bands, self.band_lengths, strict=True):
            want = (count, self.instance_size, self.instance_size) + ((n,) if n > 1 else ())
            if tiles[b].shape not in (want, want[:3] + (1,)):
                raise ValueError(f"band {b}: tiles of shape {tiles[b].shape}, expected {want}")
        fmt = self.payload_format
        if fmt not in HTTP_FORMATS:
            per = payload.tiles_per_request(fmt, self.layout, self.max_payload_bytes)
            return [
                Batch(
                    fmt, start, min(per, count - start), None, self._grpc_inputs(tiles, start, min(start + per, count))
                )
                for start in range(0, count, per)
            ]
        batches: list[Batch] = []
        pending: list[str] = []
        first = 0
        limit = self.max_payload_bytes
        size = payload.ENVELOPE
        for i in range(count):
            text = self._instance(tiles, i)
            added = len(text) + (1 if pending else 0)
            if pending and size + added > limit:
                batches.append(_http_batch(fmt, first, pending))
                pending, first, size = [], i, payload.ENVELOPE
                added = len(text)
            if size + added > limit:
                raise payload.PayloadTooLarge(
                    f"tile {i}: one {fmt} instance of {self.instance_size}x{self.instance_size} pixels "
                    f"takes {payload.ENVELOPE + len(text):,} bytes with the envelope, over "
                    f"maxPayloadBytes {limit:,}"
                )
            pending.append(text)
            size += added
        if pending:
            batches.append(_http_batch(fmt, first, pending))
        return batches

    # -- what Earth Engine reads back ------------------------------------------------

    def _band_shape(self, band: dict) -> tuple[int, ...]:
        side = self.answer_size
        return (side, side) if band["dimensions"] == 0 else (side, side, band["length"])

    def _check(self, name: str, array: np.ndarray, band: dict, where: str, finite: bool) -> np.ndarray:
        want = self._band_shape(band)
        if band["dimensions"] == 0 and array.shape == want + (1,):
            array = array[..., 0]
        if array.shape != want:
            raise ContractError(f"{where}: band {name!r} has shape {list(array.shape)}, expected {list(want)}")
        if finite and not np.isfinite(array).all():
            raise ContractError(f"{where}: band {name!r} holds NaN or infinite values")
        return array

    def read_predictions(self, batch: Batch, predictions, *, finite: bool = True) -> dict[str, np.ndarray]:
        """An HTTP answer's `predictions` (or a gRPC answer's named tensors) -> {band:
        [count, out, out(, length)]}, checked: one prediction per instance, every band,
        outputTileSize a side, finite numbers (unless finite=False: NaN/Inf, sent as null,
        read as NaN)."""
        fmt, names = self.payload_format, [b["name"] for b in self.output_bands]
        if fmt in ("GRPC_TF_TENSORS", "GRPC_SERIALIZED_TF_EXAMPLES", "GRPC_SERIALIZED_TF_TENSORS") and isinstance(
            predictions, dict
        ):
            rows = [{k: v[i] for k, v in predictions.items()} for i in range(len(next(iter(predictions.values()))))]
        else:
            rows = predictions
        if not isinstance(rows, list) or len(rows) != batch.count:
            got = len(rows) if isinstance(rows, list) else type(rows).__name__
            raise ContractError(f"{batch.count} instance(s) sent, {got} prediction(s) answered")
        out: dict[str, list[np.ndarray]] = {name: [] for name in names}
        for i, row in enumerate(rows):
            where = f"prediction {batch.first + i}"
            if fmt == "ND_ARRAYS":
                row = {names[0]: row}
            elif not isinstance(row, dict):
                if len(names) != 1:
                    raise ContractError(f"{where}: expected an object with bands {names}, got {type(row).__name__}")
                row = {names[0]: row}
            missing = [n for n in names if n not in row]
            if missing:
                raise ContractError(f"{where}: missing band(s) {missing}; got {sorted(row)}")
            for band in self.output_bands:
                value = row[band["name"]]
                if fmt in ("SERIALIZED_TF_TENSORS", "GRPC_SERIALIZED_TF_TENSORS") or isinstance(value, (str, bytes)):
                    array = parse_tensor_proto(_unb64(_text(value)))
                else:
                    try:
                        array = np.asarray(value, dtype=np.float32)
                    except (TypeError, ValueError) as error:
                        raise ContractError(f"{where}: band {band['name']!r} is not numbers ({error})") from None
                out[band["name"]].append(self._check(band["name"], array, band, where, finite))
        return {name: np.stack(values) for name, values in out.items()}

    def expected_outputs(self, values: np.ndarray) -> dict[str, np.ndarray]:
        """The framework model's [N, s, s, values] -> what Earth Engine should get back:
        the centre outputTileSize, split into the output bands."""
        margin = (values.shape[1] - self.answer_size) // 2
        if margin > 0:
            values = values[:, margin : margin + self.answer_size, margin : margin + self.answer_size]
        out, start = {}, 0
        for band in self.output_bands:
            part = values[..., start : start + band["length"]]
            start += band["length"]
            out[band["name"]] = part[..., 0] if band["dimensions"] == 0 else part
        return out


def _channels(array: np.ndarray, rank: int) -> np.ndarray:
    """A band as [..., y, x, values]: a scalar band of `rank` ([y, x], or [N, y, x] for
    rank 3) gets its values axis of one."""
    array = np.asarray(array, dtype=np.float32)
    return array[..., None] if array.ndim == rank else array


def _json_text(array: np.ndarray, quoted: bool = False) -> str:
    """Nested JSON lists of float32 text, no spaces (numbers as strings when quoted)."""
    text = float32_text(array)
    if quoted:
        text = np.char.add(np.char.add('"', text), '"')
    return _nest(text)


def _nest(text: np.ndarray) -> str:
    if text.ndim == 1:
        return "[" + ",".join(text.tolist()) + "]"
    return "[" + ",".join(_nest(part) for part in text) + "]"


def _http_batch(fmt: str, first: int, instances: list[str]) -> Batch:
    body = ('{"instances":[' + ",".join(instances) + "]}").encode()
    return Batch(fmt, first, len(instances), body, None)
