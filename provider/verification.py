"""Verified promotion: the golden tile a build stores with the artifact (build_hooks/golden.py),
sent through the endpoint's predict as Earth Engine sends it, the answer compared with the
model's answer at build.

Vertex AI has no way to send a custom-container predict to one deployed model of a shared
public endpoint: PredictRequest and RawPredictRequest carry no deployed-model selector
(aiplatform_v1/types/prediction_service.py), `explain` needs an explanation spec and
`invoke` a dedicated endpoint, which Earth Engine cannot call. So the check routes through
the endpoint at the step where the new version takes traffic: it predicts until an answer's
`deployedModelId` (PredictResponse.deployed_model_id, "ID of the Endpoint's DeployedModel
that served this prediction") is the new version's, and the traffic split resource moves the
split back when that answer is wrong or never comes.

Plain Python (the provider's environment has no numpy): golden.json's `request` is sent as is;
the answer is read as Earth Engine reads it (build_hooks.earth_engine.Contract.read_predictions):
ND_ARRAYS one band without keys, else an object per instance with every band, a string value
being a base64 float TensorProto.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass

from provider.client import VertexError, log

REFERENCE = re.compile(r"(gs://[^/#\s]+/[^#\s]+)#sha256=([0-9a-f]{64})")
REFERENCE_DOC = "gs://BUCKET/OBJECT#sha256=<64 hex digits> (the build's golden.json and its manifest golden_sha256)"
# How long to wait for the new version to answer one golden request when no `timeouts` bounds
# the apply; at a 1% share Vertex AI's random routing needs a few hundred requests.
DEFAULT_WAIT_SECONDS = 300.0


class VerificationFailed(Exception):
    """The deployed model answered the golden tile wrongly, or not at all."""


def reference_error(deployed_id: str, value: str) -> str | None:
    if not re.fullmatch(r"[0-9]+", deployed_id):
        return f"key {deployed_id!r}: allowed: a deployed model ID (digits) of the split"
    if not REFERENCE.fullmatch(value or ""):
        return f"{deployed_id} = {value!r}; allowed: {REFERENCE_DOC}"
    return None


@dataclass(frozen=True)
class Golden:
    uri: str
    sha256: str
    payload_format: str
    request: bytes
    expected: dict
    tolerance: float


def parse_reference(reference: str) -> tuple[str, str]:
    """A golden reference -> (its gs:// URI, its sha256); VerificationFailed when it is not one."""
    match = REFERENCE.fullmatch(reference)
    if match is None:
        raise VerificationFailed(f"golden reference {reference!r}; allowed: {REFERENCE_DOC}")
    return match.group(1), match.group(2)


def load(client, reference: str) -> Golden:
    uri, sha256 = parse_reference(reference)
    data = client.download(uri, what=f"read golden tile {uri}")
    got = hashlib.sha256(data).hexdigest()
    if got != sha256:
        raise VerificationFailed(
            f"golden tile {uri} has sha256 {got[:12]}, the manifest says {sha256[:12]}: "
            "upload the artifact the build made (its files are checked by hash)"
        )
    golden = json.loads(data)
    return Golden(
        uri,
        sha256,
        golden["payload_format"],
        golden["request"].encode(),
        golden["expected"],
        float(golden["tolerance"]),
    )


def probe(client, endpoint: str, deployed_id: str, golden: Golden, wait: float | None) -> dict:
    """Predict the golden request until `deployed_id` answers (the split sends it its share);
    its PredictResponse. VerificationFailed when it answers with an error or not within `wait`
    seconds (None: DEFAULT_WAIT_SECONDS)."""
    deadline = time.monotonic() + (wait or DEFAULT_WAIT_SECONDS)
    answered: dict[str, int] = {}
    sent = 0
    while True:
        sent += 1
        try:
            response = client.predict(endpoint, golden.request, what=f"predict the golden tile on {endpoint}")
        except VertexError as error:
            # Which deployed model failed is not in an error answer: only the new one is unchecked.
            raise VerificationFailed(f"predict answered {error.status}: {error.message}") from None
        who = str(response.get("deployedModelId", ""))
        if who == deployed_id:
            log(f"{endpoint}: deployed model {deployed_id} answered the golden tile (request {sent})")
            return response
        answered[who] = answered.get(who, 0) + 1
        if time.monotonic() > deadline:
            shown = ", ".join(f"{k or '?'} x{v}" for k, v in sorted(answered.items()))
            raise VerificationFailed(
                f"no answer from deployed model {deployed_id} in {sent} golden requests "
                f"({wait or DEFAULT_WAIT_SECONDS:.0f}s; answered by {shown})"
            )


def difference(golden: Golden, predictions) -> str | None:
    """How the answer differs from the expected one (None: within the tolerance)."""
    bands = list(golden.expected)
    if not isinstance(predictions, list) or len(predictions) != 1:
        count = len(predictions) if isinstance(predictions, list) else type(predictions).__name__
        return f"1 instance sent, {count} prediction(s) answered"
    row = predictions[0]
    if golden.payload_format == "ND_ARRAYS" or not isinstance(row, dict):
        row = {bands[0]: row}
    worst = None
    for band in bands:
        if band not in row:
            return f"band {band!r} missing from the answer (got {sorted(row)})"
        got_shape, got = _flat(row[band])
        want_shape, want = _flat(golden.expected[band][0])  # [tile][y][x](+[value]): its one tile
        if got_shape[-1:] == [1] and got_shape[:-1] == want_shape:
            got_shape = want_shape
        if got_shape != want_shape:
            return f"band {band!r} has shape {got_shape}, expected {want_shape}"
        for i, (a, b) in enumerate(zip(got, want, strict=True)):
            diff = math.inf if math.isnan(a) != math.isnan(b) else (0.0 if math.isnan(a) else abs(a - b))
            if worst is None or diff > worst[0]:
                worst = (diff, band, i, want_shape, a, b)
    if worst is None or worst[0] <= golden.tolerance:
        return None
    diff, band, index, shape, a, b = worst
    where = ", ".join(f"{axis} {n}" for axis, n in zip(("y", "x", "value"), _unravel(index, shape), strict=False))
    return (
        f"band {band!r} differs by up to {diff:.3g} (tolerance {golden.tolerance:.3g}), at {where}: "
        f"answered {a:.6g}, expected {b:.6g}"
    )


def _unravel(index: int, shape: list[int]) -> list[int]:
    out = []
    for size in reversed(shape):
        out.append(index % size)
        index //= size
    return list(reversed(out))


def _flat(value) -> tuple[list[int], list[float]]:
    """A band's value (nested lists of numbers or number strings, or a base64 TensorProto) ->
    (shape, row-major floats)."""
    if isinstance(value, str):
        return _tensor_proto(base64.b64decode(value.replace("-", "+").replace("_", "/") + "=" * (-len(value) % 4)))
    if isinstance(value, dict) and "b64" in value:
        return _tensor_proto(base64.b64decode(value["b64"]))
    shape: list[int] = []
    flat: list[float] = []

    def walk(v, depth):
        if isinstance(v, list):
            if len(shape) <= depth:
                shape.append(len(v))
            for item in v:
                walk(item, depth + 1)
        else:
            flat.append(math.nan if v is None else float(v))

    walk(value, 0)
    return shape, flat


def _varint(data: bytes, pos: int) -> tuple[int, int]:
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
        key, pos = _varint(data, pos)
        value: int | bytes
        if key & 7 == 0:
            value, pos = _varint(data, pos)
        elif key & 7 == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos : pos + length], pos + length
        elif key & 7 == 5:
            value, pos = data[pos : pos + 4], pos + 4
        else:
            value, pos = data[pos : pos + 8], pos + 8
        yield key >> 3, key & 7, value


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


def _tensor_proto(data: bytes) -> tuple[list[int], list[float]]:
    """A DT_FLOAT TensorProto (tensor_shape 2, tensor_content 4 or float_val 5), as
    build_hooks.earth_engine.parse_tensor_proto reads it."""
    shape: list[int] = []
    content = b""
    floats: list[float] = []
    for number, wire, value in _fields(data):
        if number == 2:
            for dim_number, _, dim in _fields(_bytes(value)):
                if dim_number == 2:
                    shape.append(next((_int(v) for n, _, v in _fields(_bytes(dim)) if n == 1), 0))
        elif number == 4:
            content = _bytes(value)
        elif number == 5:
            raw = _bytes(value)
            floats += list(struct.unpack(f"<{len(raw) // 4}f", raw)) if wire == 2 else [struct.unpack("<f", raw)[0]]
    if content:
        floats = list(struct.unpack(f"<{len(content) // 4}f", content))
    count = math.prod(shape) if shape else 1
    if len(floats) == 1 and count > 1:
        floats = floats * count
    return shape, floats
