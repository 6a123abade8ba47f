"""The payload budget: a config whose tile Earth Engine cannot send fails at load, before
anything is built; the built-in configs fit; the budget bounds what the simulator sends."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, example_data

from build_hooks import earth_engine as ee
from config import payload
from config.rollout import ConfigError, load_config, parse_config

BANDS = ("B2", "B3", "B4", "B5", "B6", "B7")


def test_256_tile_nd_arrays_config_fails_before_building(tmp_path):
    config = tmp_path / "rollout.toml"
    config.write_text((ROOT / "rollout.toml").read_text().replace("tile_size = 120", "tile_size = 256"))
    artifact = tmp_path / "build"
    result = subprocess.run(
        [sys.executable, "main.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "ROLLOUT_CONFIG": str(config), "CDKTF_OUTDIR": str(tmp_path / "out")},
    )
    assert result.returncode == 2
    assert "model.tile_size: 256: one ND_ARRAYS request" in result.stderr
    assert "6,294,557 bytes" in result.stderr and "max_payload_bytes 1,500,000" in result.stderr
    assert "the largest tile_size that fits is 124" in result.stderr
    assert not artifact.exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("path", ["rollout.toml", "examples/tensorflow.toml"])
def test_builtin_configs_fit(path):
    model = load_config(ROOT / path).model
    size = payload.check_budget(
        model.payload_format.value, model.band_lengths, model.tile_size, model.input_overlap, model.max_payload_bytes
    )
    assert size <= 1_500_000


def test_more_than_a_shared_endpoint_takes_is_refused_naming_the_source():
    """The stacks create a shared public endpoint (Earth Engine cannot call dedicated or private
    ones), which refuses requests over 1.5 MB: the 10 MB of a dedicated endpoint is not on offer."""
    data = example_data("pytorch")
    data["model"]["max_payload_bytes"] = 1_500_000
    assert parse_config(data).model.max_payload_bytes == 1_500_000
    data["model"].update(tile_size=256, max_payload_bytes=10_000_000)
    with pytest.raises(
        ConfigError,
        match=r"model.max_payload_bytes: 10,000,000 is over the 1.5 MB a shared public "
        r"Vertex AI endpoint accepts \(https://cloud.google.com/vertex-ai/docs/"
        r"predictions/choose-endpoint-type",
    ):
        parse_config(data)


def test_overlap_counts_in_the_budget():
    data = example_data("pytorch")
    data["model"].update(tile_size=100, input_overlap=32)
    with pytest.raises(ConfigError, match=r"100\+2x32 pixel tile .* the largest tile_size that fits is 60"):
        parse_config(data)


@pytest.mark.parametrize(
    "fields,message",
    [
        ({"input_overlap": -1}, "model.input_overlap: -1; allowed: a whole number from 0 to 1024"),
        (
            {"payload_format": "SERIALIZED_TF_TENSORS", "input_shapes": {"B2": 0}},
            "model.input_shapes.B2: 0; allowed: a whole number from 1 to 4096",
        ),
        (
            {"tile_size": 64, "input_overlap": 8, "output_tile_size": 81},
            "output_tile_size 81 is larger than the tile sent (64 + 2 x input_overlap 8 = 80)",
        ),
        ({"tile_size": 64, "output_tile_size": 63}, "64 - output_tile_size must be even"),
        ({"input_shapes": {"B2": 3}}, "input_shapes (array bands) with payload_format 'ND_ARRAYS'"),
        ({"input_shapes": {"NIR": 3}}, "input_shapes names NIR, not in input_bands"),
    ],
    ids=[
        "negative-overlap",
        "zero-array-length",
        "output-larger-than-input",
        "odd-margin",
        "array-band-json",
        "unknown-array-band",
    ],
)
def test_tile_fields_are_validated(fields, message):
    data = example_data("pytorch")
    data["model"].update(fields)
    with pytest.raises(ConfigError) as error:
        parse_config(data)
    assert message in str(error.value)


def test_builtin_bands_match_the_examples():
    from build_hooks import examples

    for name, bands in payload.BUILTIN_INPUT_BANDS.items():
        assert examples.BUILTIN[name]().input_bands == bands


@pytest.mark.parametrize("fmt", ["ND_ARRAYS", "RAW_JSON", "SERIALIZED_TF_TENSORS"])
def test_budget_bounds_the_real_bodies(fmt):
    """The worst case is never below what is sent: extreme float32 values, largest tile."""
    tile = payload.largest_tile(fmt, dict.fromkeys(BANDS, 1), 0, 1_500_000)
    contract = ee.Contract(fmt, BANDS, (1,) * 6, ({"name": "p", "dimensions": 0, "length": 1},), tile)
    tiles = {b: np.full((1, tile, tile), -1.17549435e-38, np.float32) for b in BANDS}
    (batch,) = contract.requests(tiles)
    assert len(batch.body) <= payload.request_bytes(fmt, contract.layout) <= 1_500_000
    if fmt == "SERIALIZED_TF_TENSORS":
        assert len(batch.body) == payload.request_bytes(fmt, contract.layout)


def test_array_bands_in_the_budget():
    bands = {"array_image": 3}
    assert payload.largest_tile("SERIALIZED_TF_TENSORS", bands, 0, 1_500_000) > payload.largest_tile(
        "SERIALIZED_TF_TENSORS", {"array_image": 6}, 0, 1_500_000
    )
    data = example_data("tensorflow")
    data["model"].update(
        input_bands=["array_image"],
        input_shapes={"array_image": 3},
        tile_size=128,
        input_overlap=64,
        source="tests.contract_models:keras_array_band",
    )
    assert parse_config(data).model.band_lengths == {"array_image": 3}
