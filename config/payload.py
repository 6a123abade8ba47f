"""The payload budget: how many bytes Earth Engine's request for one tile takes, per
payload format, checked against `maxPayloadBytes` when the config is loaded.

Sources:
- `ee.Model.fromVertexAi` (earthengine-api, python/ee/model.py): `maxPayloadBytes` "Defaults
  to 1.5MB (1500000 bytes.)"; `inputOverlapSize` is the "overlap in X/Y along each edge of
  pixel tiles passed in to prediction instances".
- An instance is `inputTileSize + 2 * inputOverlapSize` pixels a side: Google's
  Earth_Engine_Vertex_AI_training_demo.ipynb trains on PATCH_SIZE = 128 and predicts with
  inputTileSize [64, 64], inputOverlapSize [32, 32]; the tree-counting notebook serves a
  256x256 model with inputTileSize [128, 128], inputOverlapSize [64, 64].
- Every band is float32: Google's TensorFlow notebooks parse every band with
  `tf.io.parse_tensor(x, tf.float32)` and send `image.float()`.

The sizes are worst cases, so a config that passes here never makes a request Vertex AI
refuses: a float32 written as JSON text takes at most 15 characters with 9 significant
digits ("-1.17549435e-38"), the shortest text that reads back as the same float32.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

# Earth Engine's default, and the most a shared public Vertex AI endpoint accepts (the
# stacks create only those: config/rules.py max_payload_bytes).
DEFAULT_MAX_PAYLOAD_BYTES = 1_500_000
MAX_TILE = 2048
FLOAT_TEXT = 15
# The bands of the built-in examples (build_hooks/examples.py; a test keeps them equal),
# so their budget is known without importing a framework.
BUILTIN_INPUT_BANDS = {
    "pytorch-landcover": ("B2", "B3", "B4", "B5", "B6", "B7"),
    "keras-landcover": ("B2", "B3", "B4", "B5", "B6", "B7"),
}
ENVELOPE = len('{"instances":[]}')


class PayloadTooLarge(ValueError):
    """One tile does not fit in one Earth Engine request."""


class _TileFields(Protocol):
    """What TileSides needs of the class it is mixed into. A Protocol for `self` rather than
    annotations on TileSides, which pydantic would take for fields of ModelConfig (in front of
    its own, reordering them)."""

    @property
    def tile_size(self) -> int: ...

    @property
    def input_overlap(self) -> int: ...

    @property
    def output_tile_size(self) -> int | None: ...


class TileSides:
    """The sides Earth Engine's tile fields make, for a class with tile_size, input_overlap
    and output_tile_size (the config's ModelConfig, the Earth Engine Contract)."""

    @property
    def instance_size(self: _TileFields) -> int:
        """Pixels a side of each instance Earth Engine sends: tile plus overlap on both edges."""
        return self.tile_size + 2 * self.input_overlap

    @property
    def answer_size(self: _TileFields) -> int:
        """Pixels a side of each answer (`outputTileSize`, default `inputTileSize`)."""
        return self.output_tile_size or self.tile_size


@dataclass(frozen=True)
class Layout:
    """What one instance carries: its bands (values per pixel each) and its side in pixels."""

    bands: tuple[tuple[str, int], ...]
    side: int

    @property
    def values(self) -> int:
        return sum(n for _, n in self.bands)


def _varint_len(value: int) -> int:
    return max(1, math.ceil(value.bit_length() / 7))


def _b64_len(n: int) -> int:
    return 4 * math.ceil(n / 3)


def tensor_proto_len(shape: Sequence[int]) -> int:
    """Bytes of a float32 TensorProto with tensor_content (dtype, tensor_shape, content)."""
    dims = sum(1 + _varint_len(d_len) + d_len for d_len in (1 + _varint_len(d) for d in shape))
    content = 4 * math.prod(shape)
    return 2 + 1 + _varint_len(dims) + dims + 1 + _varint_len(content) + content


def _json_array_len(shape: Sequence[int], item: int) -> int:
    """Bytes of nested JSON lists of `shape`, each leaf `item` bytes, no spaces."""
    length = item
    for d in reversed(shape):
        length = 2 + d * length + (d - 1)
    return length


def _band_shape(side: int, values: int) -> tuple[int, ...]:
    return (side, side) if values == 1 else (side, side, values)


def instance_bytes(payload_format: str, layout: Layout) -> int:
    """Worst-case bytes of one instance (one tile) in a request of this payload format."""
    side = layout.side
    if payload_format == "ND_ARRAYS":
        return _json_array_len((layout.values, side, side), FLOAT_TEXT)
    if payload_format == "RAW_JSON":
        keys = sum(len(name) + 3 for name, _ in layout.bands)  # "name":
        arrays = sum(_json_array_len(_band_shape(side, n), FLOAT_TEXT + 2) for _, n in layout.bands)
        return 2 + keys + arrays + len(layout.bands) - 1
    if payload_format == "SERIALIZED_TF_TENSORS":
        # Each band a [y, x, values] TensorProto (scalar bands [y, x, 1]), as Google's notebooks parse.
        encoded = sum(len(name) + 5 + _b64_len(tensor_proto_len((side, side, n))) for name, n in layout.bands)
        return 2 + encoded + len(layout.bands) - 1
    if payload_format == "GRPC_SERIALIZED_TF_TENSORS":
        # One DT_STRING tensor per band; each instance adds one base64 TensorProto string.
        return sum(3 + _b64_len(tensor_proto_len((side, side, n))) for _, n in layout.bands)
    if payload_format == "GRPC_TF_TENSORS":
        return sum(4 * side * side * n for _, n in layout.bands)
    if payload_format == "GRPC_SERIALIZED_TF_EXAMPLES":
        features = sum(len(name) + 16 + 4 * side * side * n for name, n in layout.bands)
        return 8 + features
    raise ValueError(f"unknown payload format {payload_format!r}")


def request_overhead(payload_format: str, layout: Layout) -> int:
    """Bytes of a request besides its instances: the JSON envelope, or the PredictRequest's
    model spec and one tensor header (name, dtype, shape) per input."""
    if payload_format in ("ND_ARRAYS", "RAW_JSON", "SERIALIZED_TF_TENSORS"):
        return ENVELOPE
    names = ["input"] if payload_format == "GRPC_SERIALIZED_TF_EXAMPLES" else [n for n, _ in layout.bands]
    return 32 + sum(len(name) + 40 for name in names)


def request_bytes(payload_format: str, layout: Layout, instances: int = 1) -> int:
    """Worst-case bytes of a request of `instances` tiles."""
    separators = instances - 1 if payload_format in ("ND_ARRAYS", "RAW_JSON", "SERIALIZED_TF_TENSORS") else 0
    return request_overhead(payload_format, layout) + instances * instance_bytes(payload_format, layout) + separators


def tiles_per_request(payload_format: str, layout: Layout, max_payload_bytes: int) -> int:
    """How many tiles fit in one request (at least one, or PayloadTooLarge)."""
    one = request_bytes(payload_format, layout)
    if one > max_payload_bytes:
        raise PayloadTooLarge(f"one tile takes {one} bytes, over {max_payload_bytes}")
    per = instance_bytes(payload_format, layout) + (
        1 if payload_format in ("ND_ARRAYS", "RAW_JSON", "SERIALIZED_TF_TENSORS") else 0
    )
    return 1 + (max_payload_bytes - one) // per


def largest_tile(payload_format: str, bands: Mapping[str, int], overlap: int, max_payload_bytes: int) -> int:
    """The largest square inputTileSize whose tile (plus overlap) fits one request; 0 if none."""
    lo, hi = 0, MAX_TILE
    while lo < hi:
        mid = (lo + hi + 1) // 2
        layout = Layout(tuple(bands.items()), mid + 2 * overlap)
        if request_bytes(payload_format, layout) <= max_payload_bytes:
            lo = mid
        else:
            hi = mid - 1
    return lo


def check_budget(
    payload_format: str, bands: Mapping[str, int], tile_size: int, overlap: int, max_payload_bytes: int
) -> int:
    """The request bytes of one tile, or PayloadTooLarge naming the largest tile_size that fits."""
    layout = Layout(tuple(bands.items()), tile_size + 2 * overlap)
    size = request_bytes(payload_format, layout)
    if size <= max_payload_bytes:
        return size
    best = largest_tile(payload_format, bands, overlap, max_payload_bytes)
    described = ", ".join(name if n == 1 else f"{name}[{n}]" for name, n in bands.items())
    side = f"{tile_size}+2x{overlap}" if overlap else f"{tile_size}"
    fits = (
        f"the largest tile_size that fits is {best}; allowed: tile_size <= {best}"
        if best
        else "no tile_size fits; allowed: fewer bands, less input_overlap or a larger max_payload_bytes"
    )
    raise PayloadTooLarge(
        f"tile_size {tile_size}: one {payload_format} request for a {side} pixel tile of "
        f"{layout.values} values per pixel ({described}) takes up to {size:,} bytes, over "
        f"max_payload_bytes {max_payload_bytes:,} (Earth Engine's maxPayloadBytes; Vertex AI "
        f"refuses requests over 1.5 MB on shared public endpoints): {fits}"
    )
