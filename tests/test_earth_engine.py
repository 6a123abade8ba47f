"""Our Earth Engine request builder against TensorFlow's own protobuf code."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from build_hooks import earth_engine as ee

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
    bands = ["B2", "B3"]
    tiles = ee.example_tiles(bands, 4, count=2)
    nd = ee.request_body("ND_ARRAYS", tiles, bands)
    assert np.asarray(nd["instances"]).shape == (2, 2, 4, 4)
    raw = ee.request_body("RAW_JSON", tiles, bands)
    assert set(raw["instances"][0]) == {"B2", "B3"}
    assert isinstance(raw["instances"][0]["B2"][0][0], str)  # numbers travel as JSON strings
    assert float(raw["instances"][1]["B3"][2][1]) == pytest.approx(tiles[1, 1, 2, 1])
    serialized = ee.request_body("SERIALIZED_TF_TENSORS", tiles, bands)
    decoded = ee.parse_tensor_proto(base64.urlsafe_b64decode(serialized["instances"][1]["B3"]))
    assert np.array_equal(decoded, tiles[1, 1][..., None])  # [y, x, 1], web-safe, as Google's notebooks parse
    with pytest.raises(ValueError, match="no HTTP JSON body"):
        ee.request_body("GRPC_TF_TENSORS", tiles, bands)
