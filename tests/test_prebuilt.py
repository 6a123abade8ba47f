"""Vertex AI's prebuilt images stay honest while they exist: an artifact for one is loaded and
run under that image's framework version before the build accepts it, and an image past its
end of availability is refused, naming the date and the source; `review` warns within 90
days of it."""

from __future__ import annotations

from datetime import date

import pytest
from conftest import config_in, example_data
from test_own_model import quiet, write_project

from build_hooks.build import build
from config import images
from config.rollout import ConfigError, load_config, parse_config

PYTORCH_2_4 = "us-docker.pkg.dev/vertex-ai/prediction/pytorch-cpu.2-4:latest"
TF_2_15 = "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"


@pytest.fixture(autouse=True)
def before_the_end(monkeypatch):
    """The prebuilt images' last days: their end of availability is 2027-01-14."""
    monkeypatch.setenv("EEV_TODAY", "2026-12-01")


@pytest.mark.slow
def test_a_unet_with_bilinear_upsampling_is_refused_for_pytorch_2_4(tmp_path):
    """Scripted with torch 2.13, `F.interpolate(mode="bilinear")` and `nn.Upsample` fail to
    load in torch 2.4.1 (`aten::_upsample_lanczos2d_aa`); the deployment would crash-loop."""
    config = load_config(write_project(tmp_path, extra=f'serving_image = "{PYTORCH_2_4}"'))
    with pytest.raises(ValueError) as refused:
        build(config, log=quiet)
    message = str(refused.value)
    assert message.startswith(
        "model.serving_image: pytorch-*.2-4 runs torch==2.4.1, and the artifact built with "
        "the project's versions fails there (targets.0, targets.1): torch 2.4.1"
    )
    assert "cannot load the TorchScript: RuntimeError: Unknown builtin op: aten::_upsample" in message
    assert "leave serving_image unset for our own image" in message
    assert not (config.artifact_dir / "manifest.json").exists()


@pytest.mark.slow
def test_the_same_unet_is_accepted_on_our_image(tmp_path):
    config = load_config(write_project(tmp_path))
    manifest = build(config, log=quiet)
    assert [f.path for f in manifest.files] == ["ee_contract.json", "golden.json", "model.pt2"]


@pytest.mark.slow
def test_the_built_in_model_still_builds_for_pytorch_2_4(tmp_path):
    data = example_data("pytorch")
    data["model"]["serving_image"] = PYTORCH_2_4
    for target in data["targets"]:
        target.pop("serving_image", None)
    messages = []
    manifest = build(config_in(tmp_path, data), log=messages.append)
    assert {"model.mar", "model.pt2"} <= {f.path for f in manifest.files}
    assert manifest.serving_images == ()  # no target runs our image
    assert any("pytorch-*.2-4: the artifact loads and answers alike under torch 2.4.1" in m for m in messages)


@pytest.mark.slow
def test_the_keras_model_builds_for_tensorflow_2_15(tmp_path):
    data = example_data("tensorflow")
    data["model"]["serving_image"] = TF_2_15
    messages = []
    manifest = build(config_in(tmp_path, data), log=messages.append)
    assert "saved_model.pb" in {f.path for f in manifest.files}  # the prebuilt layout: at the root
    assert any("tf2-*.2-15: the artifact loads and answers alike under TensorFlow 2.15.1" in m for m in messages)


def config_with(image: str, **target) -> dict:
    data = example_data("pytorch")
    data["model"]["serving_image"] = image
    data["targets"] = [{**data["targets"][0], **target}]
    return data


def test_a_prebuilt_image_past_its_end_of_availability_is_refused(monkeypatch):
    monkeypatch.setenv("EEV_TODAY", "2027-01-14")
    with pytest.raises(ConfigError) as refused:
        parse_config(config_with(PYTORCH_2_4))
    message = str(refused.value)
    assert f"model: serving_image: '{PYTORCH_2_4}' reached its end of availability on 2027-01-14" in message
    assert "https://cloud.google.com/vertex-ai/docs/framework-support-policy" in message
    assert "leave serving_image unset for our own image" in message


def test_an_older_prebuilt_image_is_refused_today():
    with pytest.raises(ConfigError, match=r"pytorch-cpu\.2-1:latest' reached its end of availability on 2025-12-01"):
        parse_config(config_with("us-docker.pkg.dev/vertex-ai/prediction/pytorch-cpu.2-1:latest"))


def test_an_unknown_prebuilt_version_is_refused():
    with pytest.raises(ConfigError, match=r"is not a prebuilt prediction image Vertex AI lists \(pytorch-\*\.2-4"):
        parse_config(config_with("us-docker.pkg.dev/vertex-ai/prediction/pytorch-cpu.2-9:latest"))


def test_the_default_is_our_own_image():
    config = parse_config(example_data("pytorch"))
    assert [config.image_kind(t) for t in config.targets] == ["own", "own"]
    assert config.own_image(config.targets[0]).name == "ee-serving-pytorch-cpu"
    gpu = parse_config(
        {
            **example_data("pytorch"),
            "targets": [
                {**example_data("pytorch")["targets"][0], "accelerator_type": "NVIDIA_TESLA_T4", "accelerator_count": 1}
            ],
        }
    )
    assert gpu.own_image(gpu.targets[0]).name == "ee-serving-pytorch-gpu"


def test_the_warning_comes_within_90_days():
    image = images.prebuilt(PYTORCH_2_4)
    assert images.availability_warning(image, date(2026, 10, 15)) is None
    warning = images.availability_warning(image, date(2026, 12, 1))
    assert warning.startswith(f"{PYTORCH_2_4} reaches its end of availability on 2027-01-14, in 44 days")


def test_review_warns_of_the_end_of_availability(tmp_path):
    import json

    from plan.review import availability_warnings

    for stack, image in (
        ("dev-model", PYTORCH_2_4),
        ("prod-model", "europe-west4-docker.pkg.dev/p/r/i@sha256:" + "0" * 64),
    ):
        folder = tmp_path / "stacks" / stack
        folder.mkdir(parents=True)
        (folder / "cdk.tf.json").write_text(
            json.dumps({"resource": {"eevertex_model": {"m": {"container_image_uri": image}}}})
        )
    warnings = availability_warnings(tmp_path, ["dev-model", "prod-model", "dev-deployment"])
    assert warnings == [f"dev: {images.availability_warning(images.prebuilt(PYTORCH_2_4), date(2026, 12, 1))}"]


def test_prebuilt_handler_code_runs_on_the_prebuilt_images_python():
    """The TorchServe handler and the codec it ships with run on the prebuilt images' Python
    3.9 ("2.4 (Python 3.9)", Prebuilt containers for inference)."""
    import ast

    from conftest import ROOT

    for name in ("serving/codec.py", "serving/torchserve_handler.py"):
        ast.parse((ROOT / name).read_text(), feature_version=(3, 9))
