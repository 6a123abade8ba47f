"""Our Earth Engine request builder against TensorFlow's own protobuf code."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from build_hooks import earth_engine as ee
from config import payload

tf = pytest.importorskip("tensorflow")


def test_tensor_proto_round_trips_through_tensorflow():
    array = np.arange(24, dtype=np.float32).reshape(4, 6) / 7
    assert np.array_equal(tf.io.parse_tensor(ee.tensor_proto(array), tf.float32).numpy(), array)
    serialized = tf.io.serialize_tensor(tf.constant(array)).numpy()
    assert np.array_equal(ee.parse_tensor_proto(serialized), array)


def test_tensor_proto_reads_float_val_and_scalars():
    proto = tf.make_tensor_proto(np.float32(2.5))
    assert ee.parse_tensor_proto(proto.SerializeToString()) == np.float32(2.5)
    repeated = tf.make_tensor_proto([1.5, 1.5, 1.5], dtype=tf.float32, shape=[3])
    repeated.ClearField("tensor_content")
    repeated.float_val.extend([1.5, 1.5, 1.5])
    assert ee.parse_tensor_proto(repeated.SerializeToString()).tolist() == [1.5, 1.5, 1.5]


def test_tf_example_parses_with_tensorflow():
    tile = np.arange(12, dtype=np.float32).reshape(3, 4)
    parsed = tf.io.parse_single_example(
        ee.tf_example({"B4": tile, "B8": tile * 2}),
        {"B4": tf.io.FixedLenFeature([3, 4], tf.float32), "B8": tf.io.FixedLenFeature([3, 4], tf.float32)},
    )
    assert np.array_equal(parsed["B8"].numpy(), tile * 2)


def test_request_bodies_have_earth_engine_shapes():
    out = ({"name": "classes", "dimensions": 0, "length": 1},)
    tiles = ee.Contract("ND_ARRAYS", ("B2", "B3"), (1, 1), out, 4).example_tiles(count=2)

    def request(fmt):
        (batch,) = ee.Contract(fmt, ("B2", "B3"), (1, 1), out, 4).requests(tiles)
        return batch

    nd = json.loads(request("ND_ARRAYS").body)
    assert np.asarray(nd["instances"]).shape == (2, 2, 4, 4)  # [bands][y][x] per instance
    raw = json.loads(request("RAW_JSON").body)
    assert set(raw["instances"][0]) == {"B2", "B3"}
    assert isinstance(raw["instances"][0]["B2"][0][0], str)  # numbers travel as JSON strings
    assert float(raw["instances"][1]["B3"][2][1]) == pytest.approx(tiles["B3"][1, 2, 1])
    serialized = json.loads(request("SERIALIZED_TF_TENSORS").body)
    decoded = ee.parse_tensor_proto(base64.urlsafe_b64decode(serialized["instances"][1]["B3"]))
    assert np.array_equal(decoded, tiles["B3"][1][..., None])  # [y, x, 1], web-safe, as Google's notebooks parse
    grpc = request("GRPC_TF_TENSORS")
    assert grpc.body is None and grpc.inputs["B3"].shape == (2, 4, 4, 1)


OUT = ({"name": "probabilities", "dimensions": 1, "length": 3},)
BANDS6 = ("B2", "B3", "B4", "B5", "B6", "B7")


@pytest.mark.parametrize(
    "fmt,tile",
    [
        ("ND_ARRAYS", 40),
        ("RAW_JSON", 40),
        ("SERIALIZED_TF_TENSORS", 64),
        ("GRPC_TF_TENSORS", 64),
        ("GRPC_SERIALIZED_TF_TENSORS", 64),
    ],
)
def test_request_batches_stay_within_max_payload_bytes(fmt, tile):
    contract = ee.Contract(fmt, BANDS6, (1,) * 6, OUT, tile, max_payload_bytes=300_000)
    batches = contract.requests(contract.example_tiles(count=25, seed=1))
    assert [b.first for b in batches] == list(np.cumsum([0] + [b.count for b in batches[:-1]]))
    assert sum(b.count for b in batches) == 25 and len(batches) > 1
    for batch in batches:
        if batch.body is not None:
            assert len(batch.body) <= 300_000
            assert len(json.loads(batch.body)["instances"]) == batch.count
    if batches[0].body is not None:  # as many as fit: one more would not
        one_more = len(batches[0].body) + len(batches[1].body) // batches[1].count
        assert one_more > 300_000


def test_a_tile_over_the_limit_is_refused():
    contract = ee.Contract("ND_ARRAYS", BANDS6, (1,) * 6, OUT, 200)
    with pytest.raises(payload.PayloadTooLarge, match="over maxPayloadBytes 1,500,000"):
        contract.requests(contract.example_tiles())


def test_serialized_tensors_are_web_safe_y_x_1_and_array_bands_y_x_n():
    contract = ee.Contract("SERIALIZED_TF_TENSORS", ("B4", "rgb"), (1, 3), OUT, 4, input_overlap=2)
    tiles = contract.example_tiles(count=2, seed=3)
    (batch,) = contract.requests(tiles)
    instance = json.loads(batch.body)["instances"][1]
    for band, want in (("B4", tiles["B4"][1][..., None]), ("rgb", tiles["rgb"][1])):
        text = instance[band]
        assert "+" not in text and "/" not in text
        parsed = tf.io.parse_tensor(tf.io.decode_base64(text), tf.float32).numpy()
        assert parsed.shape == (8, 8, want.shape[-1])  # tile + 2 x overlap
        np.testing.assert_array_equal(parsed, want)


def test_nd_arrays_numbers_read_back_as_the_same_float32():
    contract = ee.Contract("ND_ARRAYS", BANDS6, (1,) * 6, OUT, 8)
    tiles = contract.example_tiles(count=1, seed=4)
    (batch,) = contract.requests(tiles)
    sent = np.asarray(json.loads(batch.body)["instances"], dtype=np.float32)
    np.testing.assert_array_equal(sent, np.moveaxis(contract.model_input(tiles), -1, 1))


def test_answers_are_checked_against_the_contract():
    contract = ee.Contract("ND_ARRAYS", BANDS6, (1,) * 6, OUT, 8, input_overlap=2)
    (batch,) = contract.requests(contract.example_tiles(count=2))
    good = np.zeros((8, 8, 3)).tolist()
    assert contract.read_predictions(batch, [good, good])["probabilities"].shape == (2, 8, 8, 3)
    with pytest.raises(ee.ContractError, match="2 instance"):
        contract.read_predictions(batch, [good])
    with pytest.raises(ee.ContractError, match=r"shape \[12, 12, 3\], expected \[8, 8, 3\]"):
        contract.read_predictions(batch, [good, np.zeros((12, 12, 3)).tolist()])
    nan = np.zeros((8, 8, 3))
    nan[0, 0, 0] = np.nan
    with pytest.raises(ee.ContractError, match="NaN"):
        contract.read_predictions(batch, [good, nan.tolist()])


def test_expected_outputs_are_the_centre_crop():
    contract = ee.Contract("ND_ARRAYS", BANDS6, (1,) * 6, OUT, 4, input_overlap=2)
    values = np.arange(8 * 8 * 3, dtype=np.float32).reshape(1, 8, 8, 3)
    np.testing.assert_array_equal(contract.expected_outputs(values)["probabilities"], values[:, 2:6, 2:6])
