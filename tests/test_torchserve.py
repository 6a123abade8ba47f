"""model.mar in a real TorchServe (Java frontend, Python worker), on Earth Engine requests."""

from __future__ import annotations

import concurrent.futures
import dataclasses

import numpy as np
import pytest

from build_hooks import earth_engine as ee
from build_hooks.build import build
from serving.local import TorchServe
from build_hooks.verify import reference, reference_values
from conftest import config_in, example_data

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(torch_build):
    config, manifest = torch_build
    with TorchServe(config.artifact_dir / manifest.artifact_root / "model.mar", batch_size=4) as server:
        yield config, manifest, server


def sized(config, manifest, tile: int) -> ee.Contract:
    """The config's contract at another tile size (the built-in model is per-pixel)."""
    return dataclasses.replace(ee.Contract.from_config(config.model, manifest), tile_size=tile)


def predict(served, contract, tiles):
    _, _, server = served
    (batch,) = contract.requests(tiles)
    status, body = server.predict(batch.body)
    assert status == 200, body
    return contract.read_predictions(batch, body["predictions"])


def test_single_tile(served):
    config, manifest, _ = served
    contract = sized(config, manifest, 64)
    tiles = contract.example_tiles(count=1, seed=1)
    got = predict(served, contract, tiles)["probabilities"]
    assert got.shape == (1, 64, 64, 3)
    np.testing.assert_allclose(got, reference(config, contract, tiles)["probabilities"], atol=1e-5)
    np.testing.assert_allclose(got.sum(axis=-1), 1.0, atol=1e-5)  # softmax over classes


def test_batch_of_tiles_in_one_request(served):
    config, manifest, _ = served
    contract = sized(config, manifest, 32)
    tiles = contract.example_tiles(count=5, seed=2)
    got = predict(served, contract, tiles)["probabilities"]
    np.testing.assert_allclose(got, reference(config, contract, tiles)["probabilities"], atol=1e-5)


def test_concurrent_requests_batched_by_torchserve(served):
    config, manifest, _ = served
    contract = sized(config, manifest, 16)
    tiles = [contract.example_tiles(count=1 + i % 2, seed=10 + i) for i in range(8)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda t: predict(served, contract, t), tiles))
    for t, got in zip(tiles, results):
        np.testing.assert_allclose(got["probabilities"], reference(config, contract, t)["probabilities"], atol=1e-5)


def test_edge_tiles_of_different_sizes(served):
    config, manifest, server = served
    contract = sized(config, manifest, 16)
    full = np.moveaxis(contract.model_input(contract.example_tiles(seed=3))[0], -1, 0)  # [bands, y, x]
    edge = full[:, :, :5]
    status, body = server.predict({"instances": [full.tolist(), edge.tolist()]})
    assert status == 200, body
    assert np.asarray(body["predictions"][1]).shape == (16, 5, 3)
    want = reference_values(config, np.moveaxis(edge, 0, -1)[None])[0]
    np.testing.assert_allclose(np.asarray(body["predictions"][1]), want, atol=1e-5)


@pytest.mark.parametrize(
    "instances,status,message",
    [
        ([[[1.0, 2.0]]], 400, "expected [6 bands, y, x]"),
        ([{"B2": [[1.0]]}], 400, "ND_ARRAYS expects nested lists"),
        ([[[[1.0], [2.0, 3.0]]] * 6], 400, "not a rectangular array"),
        ([[[["a"]]] * 6], 400, "not a rectangular array"),
        ([[[[0.1]]] * 6] * 65, 422, "over the limit of 64"),
    ],
    ids=["wrong-band-count", "object-instead-of-array", "ragged", "text", "too-many-instances"],
)
def test_malformed_requests_get_4xx_and_the_worker_survives(served, instances, status, message):
    config, manifest, server = served
    pids = server.worker_pids()
    got_status, body = server.predict({"instances": instances})
    assert got_status == status
    assert message in body["message"]
    contract = sized(config, manifest, 8)
    assert predict(served, contract, contract.example_tiles())["probabilities"].shape == (1, 8, 8, 3)
    assert server.worker_pids() == pids


def test_raw_json_payload(tmp_path):
    data = example_data("pytorch")
    data["model"].update(payload_format="RAW_JSON", tile_size=64)
    config = config_in(tmp_path, data)
    manifest = build(config, log=lambda *_: None)
    contract = sized(config, manifest, 16)
    tiles = contract.example_tiles(count=2, seed=4)
    (batch,) = contract.requests(tiles)
    with TorchServe(config.artifact_dir / manifest.artifact_root / "model.mar") as server:
        status, body = server.predict(batch.body)
        assert status == 200, body
        assert set(body["predictions"][0]) == {"probabilities"}
        got = contract.read_predictions(batch, body["predictions"])
        np.testing.assert_allclose(got["probabilities"], reference(config, contract, tiles)["probabilities"], atol=1e-5)
        status, body = server.predict({"instances": [{"B2": [["0.1"]]}]})
        assert status == 400 and "missing band(s) B3, B4, B5, B6, B7" in body["message"]


@pytest.mark.parametrize(
    "body,message",
    [
        ({"instances": []}, '"instances" must be a non-empty list'),
        ({"inputs": [[[0.1]]]}, 'request body must be {"instances": [...]}'),
        (b"{not json", "request body is not JSON"),
    ],
    ids=["empty-instances", "no-instances", "not-json"],
)
def test_malformed_bodies_get_400_not_503(served, body, message):
    """TorchServe's JSON envelope would fail these with 503 "Prediction failed"."""
    config, manifest, server = served
    status, answer = server.predict(body)
    assert status == 400, answer
    assert message in answer["message"]
    contract = sized(config, manifest, 8)
    assert predict(served, contract, contract.example_tiles())["probabilities"].shape == (1, 8, 8, 3)


def test_config_tile_size_through_torchserve(served):
    """The config's own tile size, in request batches split at maxPayloadBytes."""
    config, manifest, server = served
    contract = ee.Contract.from_config(config.model, manifest)
    tiles = contract.example_tiles(count=3, seed=9)
    batches = contract.requests(tiles)
    assert all(len(b.body) <= config.model.max_payload_bytes for b in batches)
    assert sum(b.count for b in batches) == 3
    want = reference(config, contract, tiles)
    for batch in batches:
        status, body = server.predict(batch.body)
        assert status == 200, body
        got = contract.read_predictions(batch, body["predictions"])
        np.testing.assert_allclose(got["probabilities"], want["probabilities"][batch.first : batch.first + batch.count],
                                   atol=1e-5)


def test_overlap_through_the_built_mar(tmp_path):
    """tile_size 16 with 4 pixels of overlap: 24x24 instances, 16x16 answers, checked by
    verify against the model's own centre (export writes the tile fields into the .mar)."""
    from build_hooks.verify import verify

    data = example_data("pytorch")
    data["model"].update(tile_size=16, input_overlap=4)
    config = config_in(tmp_path, data)
    build(config, log=lambda *_: None)
    checks = verify(config)
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]
    assert "24x24 -> 16x16" in checks[0].name


def test_the_handler_parses_the_raw_body_when_torchserve_does_not(torch_build):
    """`decode_input_request=false` (TorchServe's config; the container env's
    TS_DECODE_INPUT_REQUEST only counts with enable_envvars_config=true): the worker passes
    the body unparsed and the handler parses it itself."""
    config, manifest = torch_build
    contract = sized(config, manifest, 16)
    tiles = contract.example_tiles(count=2, seed=12)
    (batch,) = contract.requests(tiles)
    with TorchServe(config.artifact_dir / manifest.artifact_root / "model.mar", properties={"decode_input_request": "false"}) as server:
        status, answer = server.predict(batch.body)
        assert status == 200, answer
        got = contract.read_predictions(batch, answer["predictions"])
        np.testing.assert_allclose(got["probabilities"], reference(config, contract, tiles)["probabilities"], atol=1e-5)
        status, answer = server.predict(b"{not json")
        assert status == 400 and "request body is not JSON" in answer["message"]
