"""Build hooks: deterministic artifacts, incremental rebuilds, TensorFlow signatures."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from conftest import config_in, example_data

from build_hooks import earth_engine as ee
from build_hooks.build import build
from build_hooks.manifest import read_manifest, verify_artifact
from build_hooks.verify import reference


def test_pytorch_artifact_is_byte_identical_across_builds(torch_build, tmp_path):
    config, first = torch_build
    again = config_in(tmp_path, example_data("pytorch"), artifact="again")
    second = build(again, log=lambda *_: None)
    assert second.sha256 == first.sha256
    assert (again.artifact_dir / second.artifact_root / "model.pt2").read_bytes() == (
        config.artifact_dir / first.artifact_root / "model.pt2"
    ).read_bytes()
    assert [f.path for f in second.files] == ["ee_contract.json", "golden.json", "model.pt2"]  # our image: no .mar
    assert second.golden_sha256 == first.golden_sha256
    assert (again.artifact_dir / second.artifact_root / "golden.json").read_bytes() == (
        config.artifact_dir / first.artifact_root / "golden.json"
    ).read_bytes()


def test_golden_tile_is_earth_engines_request_and_the_models_answer(torch_build):
    """golden.json: one seeded tile as Earth Engine sends it in the payload format (the very
    body), the model's own answer to it as Earth Engine reads it, a tolerance; its sha256 in
    the manifest."""
    from build_hooks.manifest import file_sha256

    config, manifest = torch_build
    path = config.artifact_dir / manifest.artifact_root / "golden.json"
    assert file_sha256(path) == manifest.golden_sha256
    golden = json.loads(path.read_text())
    assert golden["payload_format"] == manifest.payload_format == "ND_ARRAYS"
    contract = ee.Contract.from_config(config.model, manifest)
    tiles = contract.example_tiles(count=1, seed=golden["seed"])
    (batch,) = contract.requests(tiles)
    assert golden["request"].encode() == batch.body
    want = reference(config, contract, tiles)
    assert sorted(golden["expected"]) == sorted(want)
    for band, values in want.items():
        np.testing.assert_array_equal(np.asarray(golden["expected"][band], dtype=np.float32), values)
    assert 1e-3 <= golden["tolerance"] < 1


@pytest.mark.parametrize("framework", ["pytorch", "tensorflow"])
def test_artifact_does_not_depend_on_the_checkout_path(framework, torch_build, tf_build, tmp_path):
    """Another checkout, another path: the same bytes (the exported program's node metadata
    would otherwise carry the absolute paths of the model's module and of torch), and the
    same serving image (built from the images kept by this checkout: test_image.py builds one
    from nothing)."""
    import os
    import shutil
    import subprocess
    import sys

    from conftest import ROOT

    elsewhere = tmp_path / "some" / "other-checkout"
    for folder in ("build_hooks", "config", "stacks", "serving"):
        shutil.copytree(ROOT / folder, elsewhere / folder, ignore=shutil.ignore_patterns("__pycache__"))
    config = "rollout.toml" if framework == "pytorch" else "examples/tensorflow.toml"
    (elsewhere / config).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / config, elsewhere / config)
    from serving.image import images_dir

    subprocess.run(
        [sys.executable, "-m", "build_hooks", config],
        cwd=elsewhere,
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(elsewhere), "EEV_IMAGES_DIR": str(images_dir())},
    )
    here = (torch_build if framework == "pytorch" else tf_build)[1]
    there = read_manifest(elsewhere / ("build/landcover-torch" if framework == "pytorch" else "build/landcover-keras"))
    assert there.sha256 == here.sha256
    assert [i.digest for i in there.serving_images] == [i.digest for i in here.serving_images]


def test_mar_is_named_model_with_our_handler_and_fixed_dates(tmp_path):
    """For a prebuilt TorchServe image: model.mar, named `model`, our handler and the codec
    it shares with our server, fixed dates."""
    from serving_support import export

    folder = export(tmp_path, mar=True)
    with zipfile.ZipFile(folder / "model.mar") as mar:
        manifest = json.loads(mar.read("MAR-INF/MANIFEST.json"))
        assert manifest["model"]["modelName"] == "model"
        assert manifest["model"]["handler"] == "handler.py"
        assert manifest["createdOn"] == "01/01/1980 00:00:00"
        assert {i.date_time for i in mar.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert {"serving/__init__.py", "serving/codec.py", "handler.py", "model.pt"} <= set(mar.namelist())
        contract = json.loads(mar.read("ee_contract.json"))
    assert contract["payload_format"] == "ND_ARRAYS"
    assert contract["input_bands"] == ["B2", "B3", "B4"]


def test_the_program_takes_batches_of_the_configured_tile(torch_build):
    import torch

    config, manifest = torch_build
    program = torch.export.load(str(config.artifact_dir / manifest.artifact_root / "model.pt2"))
    side = config.model.instance_size
    for count in (1, 3):
        assert program.module()(torch.zeros(count, 6, side, side)).shape == (count, 3, side, side)
    contract = json.loads((config.artifact_dir / manifest.artifact_root / "ee_contract.json").read_text())
    assert (contract["tile_size"], contract["max_payload_bytes"], contract.get("batch")) == (120, 1_500_000, None)


def test_savedmodel_is_byte_identical_across_builds(tf_build, tmp_path):
    config, first = tf_build
    again = config_in(tmp_path, example_data("tensorflow"), artifact="again")
    second = build(again, log=lambda *_: None)
    assert second.sha256 == first.sha256
    # TensorFlow Serving's layout, <base>/<version>/, with its warm-up request.
    assert [f.path for f in second.files] == [
        "1/assets.extra/tf_serving_warmup_requests",
        "1/fingerprint.pb",
        "1/saved_model.pb",
        "1/variables/variables.data-00000-of-00001",
        "1/variables/variables.index",
        "golden.json",
    ]
    assert second.golden_sha256 == first.golden_sha256


def test_rebuild_with_unchanged_inputs_rewrites_nothing(torch_build):
    """Nothing changed: the export runs, gives the same hash, and no file is written."""
    config, first = torch_build
    files = [
        config.artifact_dir / "manifest.json",
        config.artifact_dir / first.sha256 / "manifest.json",
        config.artifact_dir / first.artifact_root / "model.pt2",
    ]
    mtimes = [f.stat().st_mtime_ns for f in files]
    messages = []
    assert build(config, log=messages.append) == first
    assert "already built; current artifact unchanged" in messages[-1]
    assert [f.stat().st_mtime_ns for f in files] == mtimes
    assert sorted(p.name for p in config.artifact_dir.iterdir()) == sorted([first.sha256, "manifest.json"])


def test_edited_artifact_is_rebuilt(tmp_path):
    config = config_in(tmp_path, example_data("pytorch"))
    first = build(config, log=lambda *_: None)
    program = config.artifact_dir / first.artifact_root / "model.pt2"
    program.write_bytes(b"edited")
    assert build(config, log=lambda *_: None).sha256 == first.sha256
    verify_artifact(config.artifact_dir, first)


def test_a_model_torchscript_refuses_is_exported(tmp_path):
    data = example_data("pytorch")
    data["model"].update(source="tests.fixture_models:traced_only", name="traced", tile_size=16)
    manifest = build(config_in(tmp_path, data), log=lambda *_: None)
    assert manifest.input_bands == ("red", "nir")


def test_a_model_whose_batch_cannot_vary_is_served_one_tile_at_a_time(tmp_path, capfd):
    from serving.pytorch_server import Model

    data = example_data("pytorch")
    data["model"].update(source="tests.fixture_models:fixed_batch", name="fixed", tile_size=16)
    config = config_in(tmp_path, data)
    manifest = build(config, log=lambda *_: None)
    assert "exported for one tile per call" in capfd.readouterr().err
    model = Model(config.artifact_dir / manifest.artifact_root)
    assert model.contract.batch == 1
    tiles = np.random.default_rng(0).uniform(size=(3, 2, 16, 16)).astype(np.float32)
    np.testing.assert_allclose(model.forward(tiles)[:, 0], tiles.sum(axis=1), rtol=1e-6)


def test_a_model_export_cannot_capture_is_refused_with_the_reason(tmp_path):
    data = example_data("pytorch")
    data["model"].update(source="tests.fixture_models:data_dependent", name="branchy", tile_size=16)
    with pytest.raises(
        RuntimeError,
        match=r"model.source: torch.export cannot capture the model on a "
        r"\[N, 2, 16, 16\] tile .*make forward\(\) traceable",
    ):
        build(config_in(tmp_path, data), log=lambda *_: None)


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
    from serving.tf_serving import SavedModel

    return config, manifest, SavedModel(config.artifact_dir / manifest.artifact_root / "1")


def test_signature_answers_serialized_tf_tensors_over_http(tmp_path):
    config, manifest, server = tf_artifact(tmp_path, "SERIALIZED_TF_TENSORS")
    contract = ee.Contract.from_config(config.model, manifest)
    tiles = contract.example_tiles(count=3, seed=5)
    (batch,) = contract.requests(tiles)
    body = json.loads(batch.body)
    assert set(body["instances"][0]) == set(manifest.input_bands)  # one key per band, base64 TensorProto each
    got = contract.read_predictions(batch, server.predict_rest(body)["predictions"])
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

    want = server.predict_rest(body)
    assert server.predict_rest(rewritten(lambda v: v.rstrip("="))) == want
    assert server.predict_rest(rewritten(lambda v: v.replace("-", "+").replace("_", "/"))) == want


@pytest.mark.parametrize("payload_format", ["GRPC_TF_TENSORS", "GRPC_SERIALIZED_TF_EXAMPLES"])
def test_grpc_signatures_answer_earth_engine_tensors(tmp_path, payload_format):
    config, manifest, server = tf_artifact(tmp_path, payload_format, source="tests.fixture_models:keras_two_outputs")
    contract = ee.Contract.from_config(config.model, manifest)
    tiles = contract.example_tiles(count=2, seed=3)
    (batch,) = contract.requests(tiles)
    got = contract.read_predictions(batch, server.call(batch.inputs))
    want = reference(config, contract, tiles)
    assert got["classes"].shape == (2, 16, 16, 3) and got["score"].shape == (2, 16, 16)
    for band in ("classes", "score"):
        np.testing.assert_allclose(got[band], want[band], atol=1e-5)


def test_manifest_records_bands_and_shapes(tf_build):
    config, manifest = tf_build
    assert read_manifest(config.artifact_dir) == manifest
    assert manifest.payload_format == "GRPC_SERIALIZED_TF_TENSORS"
    assert [b.model_dump() for b in manifest.output_bands] == [
        {"name": "probabilities", "dimensions": 1, "length": 3, "type": "float"}
    ]
    assert [i.name for i in manifest.serving_images] == ["ee-serving-tensorflow-cpu"]
