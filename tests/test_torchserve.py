"""model.mar (for Vertex AI's prebuilt PyTorch images, while they exist) in a real TorchServe
(Java frontend, Python worker), on Earth Engine requests: the same answers and refusals as
our own server, from the handler and codec shipped inside the archive."""

from __future__ import annotations

import concurrent.futures
import json

import numpy as np
import pytest
from serving_support import export

from build_hooks import earth_engine as ee
from build_hooks.examples import pytorch_landcover
from serving.local import TorchServe

pytestmark = pytest.mark.slow
BANDS = ("B2", "B3", "B4", "B5", "B6", "B7")
SIDE = 16


def landcover(folder, **overrides):
    data = {
        "input_bands": list(BANDS),
        "output_bands": [{"name": "probabilities", "dimensions": 1, "length": 3, "type": "float"}],
        "tile_size": SIDE,
        **overrides,
    }
    return export(folder, pytorch_landcover().model, mar=True, **data)


def contract(**overrides) -> ee.Contract:
    fields = {
        "payload_format": "ND_ARRAYS",
        "input_bands": BANDS,
        "band_lengths": (1,) * 6,
        "output_bands": ({"name": "probabilities", "dimensions": 1, "length": 3},),
        "tile_size": SIDE,
        **overrides,
    }
    return ee.Contract(**fields)


def reference(tiles: dict, c: ee.Contract) -> np.ndarray:
    import torch

    x = torch.from_numpy(np.ascontiguousarray(np.moveaxis(c.model_input(tiles), -1, 1)))
    with torch.inference_mode():
        values = np.moveaxis(pytorch_landcover().model(x).numpy(), 1, -1)
    return c.expected_outputs(values)["probabilities"]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = landcover(tmp_path_factory.mktemp("mar"))
    with TorchServe(folder / "model.mar", batch_size=4) as server:
        yield server


def predict(server, c, tiles):
    (batch,) = c.requests(tiles)
    status, body = server.predict(batch.body)
    assert status == 200, body
    return c.read_predictions(batch, body["predictions"])["probabilities"]


def test_tiles_in_one_request(served):
    c = contract()
    tiles = c.example_tiles(count=5, seed=2)
    got = predict(served, c, tiles)
    np.testing.assert_allclose(got, reference(tiles, c), atol=1e-5)
    np.testing.assert_allclose(got.sum(axis=-1), 1.0, atol=1e-5)  # softmax over classes


def test_concurrent_requests_batched_by_torchserve(served):
    c = contract()
    tiles = [c.example_tiles(count=1 + i % 2, seed=10 + i) for i in range(8)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda t: predict(served, c, t), tiles))
    for t, got in zip(tiles, results, strict=True):
        np.testing.assert_allclose(got, reference(t, c), atol=1e-5)


@pytest.mark.parametrize(
    "body,status,message",
    [
        (b'{"instances": [[[1.0, 2.0]]]}', 400, "a 1x2 array ([bands, y, x]); this model takes 16x16 pixels"),
        (json.dumps({"instances": [np.zeros((6, 130, 130)).tolist()]}).encode(), 400, "a 6x130x130 array"),
        (b'{"instances": [{"B2": [[1.0]]}]}', 400, "ND_ARRAYS sends nested lists"),
        (b'{"instances": []}', 400, '"instances" must be a non-empty list'),
        (b'{"inputs": [[[0.1]]]}', 400, "got an object with keys ['inputs']"),
        (b"{not json", 400, "the request body is not JSON"),
        (b"", 400, "the request body is empty"),
        (json.dumps({"instances": [np.full((6, 16, 16), 1e39).tolist()]}).encode(), 400, "not finite float32"),
    ],
    ids=[
        "wrong-band-count",
        "130-px",
        "object-instead-of-array",
        "empty-instances",
        "no-instances",
        "not-json",
        "empty-body",
        "beyond-float32",
    ],
)
def test_malformed_requests_get_4xx_and_the_worker_survives(served, body, status, message):
    pids = served.worker_pids()
    got_status, answer = served.predict(body)
    assert got_status == status, answer
    assert message in answer["message"] and "['body']" not in answer["message"]
    # TorchServe's Java frontend calls every worker error "InternalServerException" (its
    # status is the handler's); our own image answers {"error": ...} (test_image.py).
    assert answer["code"] == status
    c = contract()
    assert predict(served, c, c.example_tiles()).shape == (1, SIDE, SIDE, 3)
    assert served.worker_pids() == pids


def test_raw_json_payload(tmp_path):
    folder = landcover(tmp_path, payload_format="RAW_JSON")
    c = contract(payload_format="RAW_JSON")
    tiles = c.example_tiles(count=2, seed=4)
    (batch,) = c.requests(tiles)
    with TorchServe(folder / "model.mar") as server:
        status, body = server.predict(batch.body)
        assert status == 200, body
        assert set(body["predictions"][0]) == {"probabilities"}
        np.testing.assert_allclose(
            c.read_predictions(batch, body["predictions"])["probabilities"], reference(tiles, c), atol=1e-5
        )
        status, body = server.predict({"instances": [{"B2": [["0.1"]]}]})
        assert status == 400 and "missing band(s) B3, B4, B5, B6, B7" in body["message"]


def test_overlap_answers_the_centre(tmp_path):
    folder = landcover(tmp_path, tile_size=8, input_overlap=4)
    c = contract(tile_size=8, input_overlap=4)
    tiles = c.example_tiles(count=1, seed=5)
    with TorchServe(folder / "model.mar") as server:
        got = predict(server, c, tiles)
    assert got.shape == (1, 8, 8, 3)
    np.testing.assert_allclose(got, reference(tiles, c), atol=1e-5)


def test_the_handler_parses_the_raw_body_when_torchserve_does_not(tmp_path):
    """`decode_input_request=false` (TorchServe's config; the container env's
    TS_DECODE_INPUT_REQUEST only counts with enable_envvars_config=true): the worker passes
    the body unparsed and the handler parses it itself."""
    folder = landcover(tmp_path)
    c = contract()
    tiles = c.example_tiles(count=2, seed=12)
    (batch,) = c.requests(tiles)
    with TorchServe(folder / "model.mar", properties={"decode_input_request": "false"}) as server:
        status, answer = server.predict(batch.body)
        assert status == 200, answer
        np.testing.assert_allclose(
            c.read_predictions(batch, answer["predictions"])["probabilities"], reference(tiles, c), atol=1e-5
        )
        status, answer = server.predict(b"{not json")
        assert status == 400 and "the request body is not JSON" in answer["message"]
