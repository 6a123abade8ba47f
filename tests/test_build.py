"""Build hooks: deterministic artifacts, incremental rebuilds, TensorFlow signatures."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from build_hooks import earth_engine as ee
from build_hooks.build import build
from build_hooks.manifest import read_manifest, verify_artifact
from build_hooks.verify import reference
from conftest import config_in, example_data


def test_pytorch_artifact_is_byte_identical_across_builds(torch_build, tmp_path):
    config, first = torch_build
    again = config_in(tmp_path, example_data("pytorch"), artifact="again")
    second = build(again, log=lambda *_: None)
    assert second.sha256 == first.sha256
    assert (again.artifact_dir / second.artifact_root / "model.mar").read_bytes() == (
        config.artifact_dir / first.artifact_root / "model.mar"
    ).read_bytes()


@pytest.mark.parametrize("framework", ["pytorch", "tensorflow"])
def test_artifact_does_not_depend_on_the_checkout_path(framework, torch_build, tf_build, tmp_path):
    """Another checkout, another path: the same bytes (TorchScript's debug records would
    otherwise carry the absolute paths of the model's module and of torch)."""
    import os
    import shutil
    import subprocess
    import sys

    from conftest import ROOT

    elsewhere = tmp_path / "some" / "other-checkout"
    for folder in ("build_hooks", "config", "stacks"):
        shutil.copytree(ROOT / folder, elsewhere / folder, ignore=shutil.ignore_patterns("__pycache__"))
    config = "rollout.toml" if framework == "pytorch" else "examples/tensorflow.toml"
    (elsewhere / config).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / config, elsewhere / config)
    subprocess.run([sys.executable, "-m", "build_hooks", config], cwd=elsewhere, check=True, capture_output=True,
                   env={**os.environ, "PYTHONPATH": str(elsewhere)})
    here = (torch_build if framework == "pytorch" else tf_build)[1]
    there = read_manifest(elsewhere / ("build/landcover-torch" if framework == "pytorch" else "build/landcover-keras"))
    assert there.sha256 == here.sha256


def test_mar_is_named_model_with_our_handler_and_fixed_dates(torch_build):
    config, manifest = torch_build
    with zipfile.ZipFile(config.artifact_dir / manifest.artifact_root / "model.mar") as mar:
        manifest = json.loads(mar.read("MAR-INF/MANIFEST.json"))
        assert manifest["model"]["modelName"] == "model"
        assert manifest["model"]["handler"] == "handler.py"
        assert manifest["createdOn"] == "01/01/1980 00:00:00"
        assert {i.date_time for i in mar.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        contract = json.loads(mar.read("ee_contract.json"))
    assert contract["payload_format"] == "ND_ARRAYS"
    assert contract["input_bands"] == ["B2", "B3", "B4", "B5", "B6", "B7"]


def test_savedmodel_is_byte_identical_across_builds(tf_build, tmp_path):
    config, first = tf_build
    again = config_in(tmp_path, example_data("tensorflow"), artifact="again")
    second = build(again, log=lambda *_: None)
    assert second.sha256 == first.sha256
    assert [f.path for f in second.files] == [
        "fingerprint.pb", "saved_model.pb",
        "variables/variables.data-00000-of-00001", "variables/variables.index",
    ]


def test_rebuild_with_unchanged_inputs_rewrites_nothing(torch_build):
    """Nothing changed: the export runs, gives the same hash, and no file is written."""
    config, first = torch_build
    files = [config.artifact_dir / "manifest.json", config.artifact_dir / first.sha256 / "manifest.json",
             config.artifact_dir / first.artifact_root / "model.mar"]
    mtimes = [f.stat().st_mtime_ns for f in files]
    messages = []
    assert build(config, log=messages.append) == first
    assert "already built; current artifact unchanged" in messages[-1]
    assert [f.stat().st_mtime_ns for f in files] == mtimes
    assert sorted(p.name for p in config.artifact_dir.iterdir()) == sorted([first.sha256, "manifest.json"])


def test_edited_artifact_is_rebuilt(tmp_path):
    config = config_in(tmp_path, example_data("pytorch"))
    first = build(config, log=lambda *_: None)
    mar = config.artifact_dir / first.artifact_root / "model.mar"
    mar.write_bytes(b"edited")
    assert build(config, log=lambda *_: None).sha256 == first.sha256
    verify_artifact(config.artifact_dir, first)


def test_unscriptable_model_is_traced_with_a_message(tmp_path, capfd):
    data = example_data("pytorch")
    data["model"].update(source="tests.fixture_models:traced_only", name="traced")
    manifest = build(config_in(tmp_path, data), log=lambda *_: None)
    assert manifest.input_bands == ("red", "nir")
    assert "torch.jit.script failed" in capfd.readouterr().err


def test_unknown_builtin_names_the_allowed_ones(tmp_path):
    data = example_data("pytorch")
    data["model"]["source"] = "builtin:resnet"
    with pytest.raises(RuntimeError, match="allowed: builtin:keras-landcover, builtin:pytorch-landcover"):
        build(config_in(tmp_path, data), log=lambda *_: None)


def test_framework_mismatch_is_reported(tmp_path):
    data = example_data("pytorch")
    data["model"]["source"] = "builtin:keras-landcover"
    with pytest.raises(RuntimeError, match="model.framework: the config says 'pytorch'"):
        build(config_in(tmp_path, data), log=lambda *_: None)


# -- TensorFlow serving signatures, one per payload format ---------------------------------


def tf_artifact(tmp_path, payload_format, source="builtin:keras-landcover", tile=16):
    data = example_data("tensorflow")
    data["model"].update(payload_format=payload_format, source=source, tile_size=tile)
    config = config_in(tmp_path, data)
    manifest = build(config, log=lambda *_: None)
    from serving.local import SavedModelServer

    return config, manifest, SavedModelServer(config.artifact_dir / manifest.artifact_root)


def test_signature_answers_serialized_tf_tensors_over_http(tmp_path):
    config, manifest, server = tf_artifact(tmp_path, "SERIALIZED_TF_TENSORS")
    contract = ee.Contract.from_config(config.model, manifest)
    tiles = contract.example_tiles(count=3, seed=5)
    (batch,) = contract.requests(tiles)
    body = json.loads(batch.body)
    assert set(body["instances"][0]) == set(manifest.input_bands)  # one key per band, base64 TensorProto each
    got = contract.read_predictions(batch, server.predict_json(body)["predictions"])
    want = reference(config, contract, tiles)
    assert got["probabilities"].shape == (3, 16, 16, 3)
    np.testing.assert_allclose(got["probabilities"], want["probabilities"], atol=1e-5)


def test_signature_accepts_websafe_and_standard_base64(tmp_path):
    config, manifest, server = tf_artifact(tmp_path, "SERIALIZED_TF_TENSORS")
    contract = ee.Contract.from_config(config.model, manifest)
    (batch,) = contract.requests(contract.example_tiles(count=1, seed=9))
    body = json.loads(batch.body)  # web-safe, padded, as Earth Engine sends it

    def rewritten(change):
        return {"instances": [{k: change(v) for k, v in body["instances"][0].items()}]}

    want = server.predict_json(body)
    assert server.predict_json(rewritten(lambda v: v.rstrip("="))) == want
    assert server.predict_json(rewritten(lambda v: v.replace("-", "+").replace("_", "/"))) == want


@pytest.mark.parametrize("payload_format", ["GRPC_TF_TENSORS", "GRPC_SERIALIZED_TF_EXAMPLES"])
def test_grpc_signatures_answer_earth_engine_tensors(tmp_path, payload_format):
    config, manifest, server = tf_artifact(tmp_path, payload_format, source="tests.fixture_models:keras_two_outputs")
    contract = ee.Contract.from_config(config.model, manifest)
    tiles = contract.example_tiles(count=2, seed=3)
    (batch,) = contract.requests(tiles)
    got = contract.read_predictions(batch, server.predict_tensors(batch.inputs))
    want = reference(config, contract, tiles)
    assert got["classes"].shape == (2, 16, 16, 3) and got["score"].shape == (2, 16, 16)
    for band in ("classes", "score"):
        np.testing.assert_allclose(got[band], want[band], atol=1e-5)


def test_manifest_records_bands_and_shapes(tf_build):
    config, manifest = tf_build
    assert read_manifest(config.artifact_dir) == manifest
    assert manifest.payload_format == "GRPC_SERIALIZED_TF_TENSORS"
    assert [b.model_dump() for b in manifest.output_bands] == [
        {"name": "probabilities", "dimensions": 1, "length": 3}
    ]
