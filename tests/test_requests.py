"""Earth Engine requests answered right, malformed ones refused: the 40 malformed requests
found against `nox -s serve`, each a 4xx with a message that names what is wrong (never a
5xx, never a believable answer to bad input), through our server in-process (the CPR app),
through the TorchServe handler of the prebuilt images, and (tests/test_image.py) through
the real image."""

from __future__ import annotations

import json

import numpy as np
import pytest
from serving_support import BANDS, ArgMax, body, cpr_app, export, tile

from serving import codec

GOOD = tile(1).tolist()
SIDE = 8


def _with(value, band=0, y=2, x=3):
    """One good instance with one value replaced."""
    bad = tile(1).tolist()[0]
    bad[band][y][x] = value
    return bad


def _raw(text: str) -> bytes:
    return text.encode()


# (id, request body, status, a part of the message)
MALFORMED = [
    ("empty-body", b"", 400, "the request body is empty"),
    ("not-json", b"instances=1", 400, "the request body is not JSON"),
    ("truncated-json", b'{"instances": [[[', 400, "the request body is not JSON"),
    ("json-array", b"[1, 2]", 400, 'must be {"instances": [...]}; got a JSON array'),
    ("json-string", b'"tile"', 400, "got a JSON string"),
    ("json-null", b"null", 400, "got a JSON null"),
    ("no-instances", b"{}", 400, "got an object with keys []"),
    ("inputs-not-instances", body(None).replace(b"instances", b"inputs"), 400, "got an object with keys ['inputs']"),
    ("instances-empty", body([]), 400, '"instances" must be a non-empty list of tiles; got an empty list'),
    ("instances-object", b'{"instances": {"B2": 1}}', 400, "got a JSON object"),
    ("instances-string", b'{"instances": "x"}', 400, "got a JSON string"),
    ("instances-null", b'{"instances": null}', 400, "got a JSON null"),
    ("instance-object", body([{"B2": [[1]]}]), 400, "ND_ARRAYS sends nested lists [bands][y][x]; got a JSON object"),
    ("instance-number", body([1.5]), 400, "got a JSON number"),
    ("instance-string", body(["tile"]), 400, "got a JSON string"),
    ("instance-null", body([None]), 400, "got a JSON null"),
    ("two-bands", body([tile(1).tolist()[0][:2]]), 400, "a 2x8x8 array ([bands, y, x]); this model takes 8x8"),
    ("four-bands", body([tile(1).tolist()[0] + tile(1).tolist()[0][:1]]), 400, "a 4x8x8 array"),
    ("130-px-tile", body(tile(1, 130).tolist()), 400, "a 3x130x130 array ([bands, y, x]); this model takes 8x8 pixels"),
    ("1x1-tile", body(tile(1, 1).tolist()), 400, "a 3x1x1 array"),
    ("mixed-sizes", body([GOOD[0], tile(1, 4).tolist()[0]]), 400, "instance 1: a 3x4x4 array"),
    ("rank-2", body([tile(1).tolist()[0][0]]), 400, "a 8x8 array ([bands, y, x])"),
    ("rank-4", body([tile(1).tolist()]), 400, "a 1x3x8x8 array"),
    ("scalar-instance-list", body([[1.0]]), 400, "a 1 array"),
    ("empty-tile", body([[]]), 400, "a 0 array"),
    ("empty-bands", body([[[], [], []]]), 400, "a 3x0 array"),
    (
        "ragged-rows",
        body([[row if i else row[:5] for i, row in enumerate(band)] for band in GOOD[0]]),
        400,
        "instance 0: the tile is not a rectangular array of numbers",
    ),
    ("ragged-bands", body([GOOD[0][:2] + [GOOD[0][2][:4]]]), 400, "not a rectangular array of numbers"),
    ("text-values", body([_with("0.1")]), 400, "not a rectangular array of numbers"),
    ("boolean-values", body([[[[True] * SIDE] * SIDE] * 3]), 400, "not a rectangular array of numbers"),
    ("null-value", body([_with(None)]), 400, "not a rectangular array of numbers"),
    ("object-value", body([_with({"v": 1})]), 400, "not a rectangular array of numbers"),
    ("nan-token", json.dumps({"instances": [_with(float("nan"))]}).encode(), 400, ""),
    ("infinity-token", json.dumps({"instances": [_with(float("inf"))]}).encode(), 400, ""),
    ("minus-infinity-token", json.dumps({"instances": [_with(float("-inf"))]}).encode(), 400, ""),
    ("1e400", body([_with(0.25)]).replace(b"0.25", b"1e400", 1), 400, ""),
    ("beyond-float32", body([_with(3.5e38)]), 400, "not finite float32 numbers (first: band B2 at y=2, x=3)"),
    ("second-instance-bad", body([GOOD[0], _with("x")]), 400, "instance 1:"),
    ("instance-boolean", body([True]), 400, "got a JSON boolean"),
    ("over-max-payload-bytes", b'{"instances": [' + b"0," * 800_000 + b"0]}", 413, "over maxPayloadBytes 1,500,000"),
]
assert len(MALFORMED) == 40


def check_refusal(status: int, text: str, want_status: int, message: str) -> None:
    assert status == want_status, text
    answer = json.loads(text)
    assert set(answer) == {"error"}, answer
    assert message in answer["error"], answer["error"]
    assert "InternalServerException" not in text and "['body']" not in text
    if not message:  # NaN, infinities and 1e400: either not JSON at all, or not finite numbers
        assert ("not JSON" in answer["error"]) or ("not finite float32" in answer["error"]), answer["error"]


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    return export(tmp_path_factory.mktemp("program"))


@pytest.fixture(scope="module")
def app(program):
    with cpr_app(program) as client:
        yield client


@pytest.mark.parametrize("json_library", ["orjson", "stdlib-json"])
@pytest.mark.parametrize("case,request_body,status,message", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_requests_get_a_4xx_that_says_why(
    app, monkeypatch, json_library, case, request_body, status, message
):
    if json_library == "stdlib-json":
        monkeypatch.setattr(codec, "orjson", None)
    answer = app.post("/predict", content=request_body, headers={"Content-Type": "application/json"})
    check_refusal(answer.status_code, answer.text, status, message)
    assert app.post("/predict", content=body(GOOD)).status_code == 200  # still serving


def test_a_good_request_is_answered_with_the_models_values(app):
    tiles = tile(3, seed=4)
    answer = app.post("/predict", content=body(tiles.tolist()))
    assert answer.status_code == 200
    np.testing.assert_allclose(np.asarray(answer.json()["predictions"]), tiles.sum(axis=1), rtol=1e-6)


def test_the_tile_cap_comes_from_the_payload_budget(app):
    """Earth Engine fills a request up to maxPayloadBytes: 95 tiles of 16 pixels fit in 1.49
    MB (the simulator's count), and far more of these 8-pixel ones; the old handler refused
    anything over 64."""
    sixteen = codec.Contract("ND_ARRAYS", tuple(f"B{i}" for i in range(6)), (codec.Band("p"),), 16)
    assert sixteen.max_instances >= 95
    assert app.app.handler.model.contract.max_instances > 300
    text = json.dumps({"instances": tile(300, seed=5).tolist()}, separators=(",", ":")).encode()
    assert len(text) < 1_500_000
    answer = app.post("/predict", content=text)
    assert answer.status_code == 200, answer.text[:300]
    assert len(answer.json()["predictions"]) == 300


def test_more_tiles_than_fit_in_max_payload_bytes_are_refused():
    """Only a request over maxPayloadBytes can hold more tiles than the cap; the server's
    length check refuses it first (413), and the decoder refuses it again if called alone."""
    contract = codec.Contract("ND_ARRAYS", BANDS, (codec.Band("sum"),), 8)
    with pytest.raises(codec.RequestError) as refused:
        codec.decode(contract, tile(contract.max_instances + 1).tolist())
    assert refused.value.status == 413
    assert f"at most {contract.max_instances} tiles of 8x8 fit in maxPayloadBytes 1,500,000" in refused.value.message


def test_parameters_are_allowed_beside_instances(app):
    """Vertex AI's request format: {"instances": ..., "parameters": ...}; parameters optional."""
    text = json.dumps({"instances": GOOD, "parameters": {"confidence": 0.5}}).encode()
    assert app.post("/predict", content=text).status_code == 200


def test_health_answers_once_the_model_has_answered_its_warm_up_tile(app):
    assert app.get("/health").status_code == 200
    assert app.app.handler.model.contract.instance_size == SIDE


def test_integer_band_is_written_as_whole_numbers(tmp_path):
    folder = export(tmp_path, ArgMax(), output_bands=[{"name": "class", "dimensions": 0, "length": 1, "type": "uint8"}])
    with cpr_app(folder) as client:
        tiles = tile(1, seed=6)
        answer = client.post("/predict", content=body(tiles.tolist()))
    assert answer.status_code == 200
    values = answer.json()["predictions"][0]
    assert all(isinstance(v, int) for row in values for v in row)
    np.testing.assert_array_equal(np.asarray(values), tiles.argmax(axis=1)[0])


def test_float_band_of_a_class_model_is_written_as_floats(tmp_path):
    """A class band declared float (the snippet says ee.PixelType.float()) is answered as
    floats, as the snippet tells Earth Engine to read it."""
    folder = export(tmp_path, ArgMax())
    with cpr_app(folder) as client:
        answer = client.post("/predict", content=body(GOOD))
    assert b"." in answer.content.split(b"[", 3)[-1][:20]


def test_the_centre_of_an_overlapping_tile_is_answered(tmp_path):
    folder = export(tmp_path, tile_size=4, input_overlap=2)
    tiles = tile(1, side=8, seed=7)
    with cpr_app(folder) as client:
        answer = client.post("/predict", content=body(tiles.tolist()))
    np.testing.assert_allclose(np.asarray(answer.json()["predictions"][0]), tiles.sum(axis=1)[0, 2:6, 2:6], rtol=1e-6)


def test_raw_json_bands_are_named_and_numbers_are_strings(tmp_path):
    folder = export(tmp_path, payload_format="RAW_JSON")
    tiles = tile(1, seed=8)
    instance = {band: np.char.mod("%.9g", tiles[0, i]).tolist() for i, band in enumerate(BANDS)}
    with cpr_app(folder) as client:
        good = client.post("/predict", content=body([instance]))
        missing = client.post("/predict", content=body([{"B2": instance["B2"]}]))
        unknown = client.post("/predict", content=body([{**instance, "B9": instance["B2"]}]))
        text = client.post("/predict", content=body([{**instance, "B3": [["abc"] * 8] * 8}]))
        nan = client.post("/predict", content=body([{**instance, "B4": [["nan"] * 8] * 8}]))
    assert good.status_code == 200
    np.testing.assert_allclose(np.asarray(good.json()["predictions"][0]["sum"]), tiles.sum(axis=1)[0], rtol=1e-6)
    check_refusal(missing.status_code, missing.text, 400, "missing band(s) B3, B4; this model takes B2, B3, B4")
    check_refusal(unknown.status_code, unknown.text, 400, "unknown band(s) B9")
    check_refusal(text.status_code, text.text, 400, "not a rectangular array of numbers written as strings")
    check_refusal(nan.status_code, nan.text, 400, "not finite float32 numbers")


# -- the TorchServe handler of the prebuilt images ----------------------------------------


@pytest.fixture(scope="module")
def torchserve_handler(tmp_path_factory):
    """serving/torchserve_handler.py initialized by TorchServe's own Context, behind its JSON
    envelope, as the prebuilt container's worker runs it."""
    import zipfile

    from ts.context import Context
    from ts.torch_handler.request_envelope.json import JSONEnvelope

    from serving.torchserve_handler import EarthEngineHandler

    folder = export(tmp_path_factory.mktemp("mar"), mar=True)
    unpacked = tmp_path_factory.mktemp("unpacked")
    with zipfile.ZipFile(folder / "model.mar") as archive:
        archive.extractall(unpacked)
    manifest = json.loads((unpacked / "MAR-INF" / "MANIFEST.json").read_text())
    context = Context("model", str(unpacked), manifest, 1, None, "0.12.0", model_yaml_config={})
    handler = EarthEngineHandler()
    handler.initialize(context)
    return lambda row: JSONEnvelope(handler.handle).handle([row], context)


TORCHSERVE_CASES = [m for m in MALFORMED if m[0] != "over-max-payload-bytes"]  # TorchServe's frontend limits bodies


@pytest.mark.parametrize("case,request_body,status,message", TORCHSERVE_CASES, ids=[m[0] for m in TORCHSERVE_CASES])
def test_the_torchserve_handler_refuses_them_alike(torchserve_handler, case, request_body, status, message):
    from ts.utils.util import PredictionException

    from serving.torchserve_handler import TOO_LARGE

    try:
        parsed = json.loads(request_body, parse_constant=lambda name: float(name.replace("Infinity", "inf")))
    except ValueError:
        parsed = request_body  # the worker passes a body that is not JSON as bytes
    with pytest.raises(PredictionException) as refused:
        torchserve_handler({"body": parsed})
    assert refused.value.error_code == (TOO_LARGE if status == 413 else 400)
    assert message in refused.value.message or not message


def test_the_torchserve_handler_answers_a_good_request(torchserve_handler):
    tiles = tile(2, seed=9)
    (text,) = torchserve_handler({"body": {"instances": tiles.tolist()}})
    np.testing.assert_allclose(np.asarray(json.loads(text)["predictions"]), tiles.sum(axis=1), rtol=1e-6)
