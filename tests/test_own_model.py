"""A user's own model, outside the repository: module lookup beside the config, a build that
never ships stale weights or helpers, the output checked against the declared bands,
version labels, content-addressed versions and short artifact references."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import ROOT

from build_hooks.build import BuildError, build
from build_hooks.manifest import ManifestError, built_versions, read_manifest, resolve_sha
from config.rollout import load_config

HELPERS = """
    import torch
    from torch import nn


    def block(channels_in: int, channels_out: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(channels_in, channels_out, 3, padding=1), nn.ReLU())
"""

FACTORY = """
    from pathlib import Path

    import torch
    import torch.nn.functional as F
    from torch import nn

    from build_hooks.manifest import Band
    from build_hooks.spec import ModelSpec
    from seg.helpers import block

    HERE = Path(__file__).resolve().parent
    CLASSES = {classes}


    # A small U-Net: an encoder, a half-resolution middle, and two decoders back up, with
    # nn.Upsample and with F.interpolate (bilinear), as U-Nets are written.
    class Segmenter(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = block(4, 8)
            self.mid = block(8, 8)
            self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
            self.head = nn.Conv2d(8, CLASSES, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            skip = self.features(x)
            middle = self.mid(F.max_pool2d(skip, 2))
            upsampled = F.interpolate(middle, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            return torch.softmax(self.head(skip + self.up(middle) + upsampled), dim=1){nan}


    def make_model() -> ModelSpec:
        model = Segmenter()
        model.load_state_dict(torch.load(HERE / "weights.pt"))
        return ModelSpec(
            model=model.eval(),
            framework="pytorch",
            input_bands=("B2", "B3", "B4", "B8"),
            output_bands=(Band(name="class_probs", dimensions=1, length={declared}),),
        )
"""

CONFIG = """
    [model]
    name = "unet-seg"
    framework = "pytorch"
    source = "seg.unet:make_model"
    payload_format = "ND_ARRAYS"
    artifact_dir = "build/unet-seg"
    tile_size = 32
    {extra}

    [[targets]]
    name = "dev"
    project = "acme-geo-dev"
    region = "us-central1"
    bucket = "acme-geo-dev-unet"

    [[targets]]
    name = "prod"
    project = "acme-geo-prod"
    region = "europe-west4"
    bucket = "acme-geo-prod-unet"
    machine_type = "n1-standard-8"
"""


def quiet(*_):
    pass


def write_project(
    folder: Path, *, classes: int = 3, declared: int = 3, seed: int = 0, nan: bool = False, extra: str = ""
) -> Path:
    """A user's project: seg/unet.py (the factory), seg/helpers.py, seg/weights.pt, rollout.toml."""

    package = folder / "seg"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text("")
    (package / "helpers.py").write_text(textwrap.dedent(HELPERS))
    nan_line = " + torch.log(torch.zeros(1)) * 0" if nan else ""
    (package / "unet.py").write_text(textwrap.dedent(FACTORY).format(classes=classes, declared=declared, nan=nan_line))
    save_weights(package, classes, seed)
    config = folder / "rollout.toml"
    config.write_text(textwrap.dedent(CONFIG).format(extra=extra))
    return config


def save_weights(package: Path, classes: int, seed: int) -> None:
    import torch
    from torch import nn

    torch.manual_seed(seed)
    model = nn.Module()
    model.features = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.ReLU())
    model.mid = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
    model.head = nn.Conv2d(8, classes, 1)
    torch.save(model.state_dict(), package / "weights.pt")


def test_module_beside_the_config_needs_no_pythonpath(tmp_path):
    config = load_config(write_project(tmp_path / "project"))
    assert "PYTHONPATH" not in os.environ or str(tmp_path) not in os.environ["PYTHONPATH"]
    manifest = build(config, log=quiet)
    assert manifest.input_bands == ("B2", "B3", "B4", "B8")
    assert (config.artifact_dir / manifest.artifact_root / "model.pt2").is_file()


def test_two_configs_with_a_package_of_the_same_name_each_get_their_own(tmp_path):
    """In one process (the starter, the build check), a second folder's `seg` is not the
    first folder's, which stays in sys.modules, even once that folder is gone."""
    import shutil

    from build_hooks.spec import load_spec

    write_project(tmp_path / "first", classes=3, declared=3)
    write_project(tmp_path / "second", classes=5, declared=5)
    assert load_spec("seg.unet:make_model", tmp_path / "first").output_values == 3
    shutil.rmtree(tmp_path / "first")
    assert load_spec("seg.unet:make_model", tmp_path / "second").output_values == 5
    assert sys.modules["seg.unet"].__file__ == str(tmp_path / "second" / "seg" / "unet.py")


def test_new_weights_give_a_new_artifact_and_keep_the_old(tmp_path):
    config = load_config(write_project(tmp_path))
    first = build(config, log=quiet)
    save_weights(tmp_path / "seg", classes=3, seed=1)
    messages = []
    second = build(config, log=messages.append)
    assert second.sha256 != first.sha256
    assert f"current artifact was {first.sha256[:12]}" in messages[-1]
    assert read_manifest(config.artifact_dir) == second
    assert {m.sha256 for m in built_versions(config.artifact_dir)} == {first.sha256, second.sha256}
    assert (config.artifact_dir / first.artifact_root / "model.pt2").is_file()


def test_an_edited_helper_module_gives_a_new_artifact(tmp_path):
    config = load_config(write_project(tmp_path))
    first = build(config, log=quiet)
    helpers = tmp_path / "seg" / "helpers.py"
    helpers.write_text(helpers.read_text().replace("nn.ReLU()", "nn.LeakyReLU(0.1)"))
    assert build(config, log=quiet).sha256 != first.sha256


def test_a_stale_pyc_of_a_helper_is_not_used(tmp_path):
    """An edit that keeps the file's size and mtime second leaves a .pyc Python would trust."""
    import py_compile

    config = load_config(write_project(tmp_path))
    first = build(config, log=quiet)
    helpers = tmp_path / "seg" / "helpers.py"
    py_compile.compile(
        str(helpers), cfile=str(tmp_path / "seg" / "__pycache__" / f"helpers.{sys.implementation.cache_tag}.pyc")
    )
    stat = helpers.stat()
    helpers.write_text(helpers.read_text().replace("nn.ReLU()", "nn.GELU()"))
    os.utime(helpers, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert helpers.stat().st_size == stat.st_size
    assert build(config, log=quiet).sha256 != first.sha256


def test_version_label_makes_another_artifact(tmp_path):
    plain = load_config(write_project(tmp_path / "a"))
    labelled = load_config(write_project(tmp_path / "b", extra='version_label = "rehearsal-next"'))
    first, second = build(plain, log=quiet), build(labelled, log=quiet)
    assert first.sha256 != second.sha256 and second.version_label == "rehearsal-next"
    contract = json.loads((labelled.artifact_dir / second.artifact_root / "ee_contract.json").read_text())
    assert contract["version_label"] == "rehearsal-next"


def test_keras_version_label_is_an_asset(tf_build, tmp_path):
    from conftest import config_in, example_data

    data = example_data("tensorflow")
    data["model"]["version_label"] = "rehearsal-next"
    config = config_in(tmp_path, data)
    manifest = build(config, log=quiet)
    assert manifest.sha256 != tf_build[1].sha256
    assert "1/assets.extra/version_label.txt" in [f.path for f in manifest.files]


def test_output_channels_must_match_the_declared_bands(tmp_path):
    config = load_config(write_project(tmp_path, classes=5, declared=3))
    with pytest.raises(BuildError) as caught:
        build(config, log=quiet)
    message = str(caught.value)
    assert (
        "model.pt2, tile 32x32: the declared output bands (class_probs length 3) add up to 3 values per "
        "pixel, but the model returns 5 (output [N, values, y, x] of shape [1, 5, 32, 32])"
    ) in message
    assert "model.pt2, edge tile 32x32" in message
    assert not (config.artifact_dir / "manifest.json").exists()


OVERLAP = "input_overlap = 8\noutput_tile_size = 32"


def test_a_model_with_overlap_passes_the_check(tmp_path):
    messages = []
    build(load_config(write_project(tmp_path, extra=OVERLAP)), log=messages.append)
    # The model sees 32 + 2 x 8 pixels a side; the answer is the centre 32.
    assert "build: ok model.pt2, tile 48x48 -> 32x32: class_probs (32, 32, 3) (float32)" in messages
    assert "build: ok model.pt2, edge tile 48x48 -> 32x32: class_probs (32, 32, 3) (float32)" in messages


def test_output_channels_must_match_the_declared_bands_with_overlap(tmp_path):
    config = load_config(write_project(tmp_path, classes=5, declared=3, extra=OVERLAP))
    with pytest.raises(BuildError) as caught:
        build(config, log=quiet)
    assert (
        "model.pt2, tile 48x48 -> 32x32: the declared output bands (class_probs length 3) add up to 3 values per "
        "pixel, but the model returns 5 (output [N, values, y, x] of shape [1, 5, 48, 48])"
    ) in str(caught.value)


def test_keras_output_channels_must_match_the_declared_bands(tmp_path):
    from conftest import config_in, example_data

    data = example_data("tensorflow")
    data["model"].update(source="tests.fixture_models:keras_too_many_outputs", tile_size=16)
    with pytest.raises(
        BuildError,
        match=r"\(classes length 3, score length 1\) add up to 4 values per pixel, "
        r"but the model returns 6",
    ):
        build(config_in(tmp_path, data), log=quiet)


def test_nan_outputs_are_reported(tmp_path):
    messages = []
    build(load_config(write_project(tmp_path, nan=True)), log=messages.append)
    assert any("WARNING model.pt2, tile 32x32: " in m and "NaN or Inf" in m for m in messages)


def run_build(config: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, "-m", "build_hooks", str(config)], cwd=ROOT, env=env, capture_output=True, text=True
    )


def test_missing_module_names_the_folders_searched(tmp_path):
    config = write_project(tmp_path)
    config.write_text(config.read_text().replace("seg.unet:make_model", "unet_seg:make_model"))
    result = run_build(config)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"model.source: cannot find module 'unet_seg'; looked in: {tmp_path} (the config's folder)" in result.stderr
    assert "Put unet_seg.py (or a package folder unet_seg/) beside the config file" in result.stderr


def test_missing_factory_and_framework_mismatch_have_no_traceback(tmp_path):
    config = write_project(tmp_path)
    text = config.read_text()
    config.write_text(text.replace("seg.unet:make_model", "seg.unet:build_model"))
    result = run_build(config)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "model.source: 'seg.unet' (" in result.stderr
    assert "has no function 'build_model'; functions it defines: make_model" in result.stderr
    config.write_text(
        text.replace('framework = "pytorch"', 'framework = "tensorflow"').replace(
            '"ND_ARRAYS"', '"SERIALIZED_TF_TENSORS"'
        )
    )
    result = run_build(config)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (
        "model.framework: the config says 'tensorflow' but seg.unet:make_model builds a 'pytorch' model"
        in result.stderr
    )


@pytest.mark.parametrize(
    "body,raised",
    [
        ("raise RuntimeError('weights.pt is for another head')", "RuntimeError: weights.pt is for another head"),
        ("import segmentation_models_pytorch", "ModuleNotFoundError: No module named 'segmentation_models_pytorch'"),
    ],
)
def test_a_factory_that_raises_gives_one_line_and_its_traceback_in_a_file(tmp_path, body, raised):
    config = write_project(tmp_path)
    unet = tmp_path / "seg" / "unet.py"
    unet.write_text(unet.read_text().replace("    model = Segmenter()\n", f"    {body}\n    model = Segmenter()\n"))
    result = run_build(config)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    log = tmp_path / "build" / "unet-seg" / "build-error.log"
    (line,) = result.stderr.strip().splitlines()[-1:]
    assert line.startswith("error: build: exporting unet-seg from model.source seg.unet:make_model failed: " + raised)
    assert line.endswith(f"the traceback is in {log}")
    if raised.startswith("ModuleNotFoundError"):
        assert "install the missing package where the build runs" in line
    assert "Traceback (most recent call last)" in log.read_text() and "seg/unet.py" in log.read_text()


def test_a_model_reading_other_bands_than_declared_stops_synth_without_a_traceback(tmp_path):
    """main.py (cdktf synth) with input_bands that are not the built model's: one error line."""
    config = write_project(tmp_path)
    assert run_build(config).returncode == 0
    config.write_text(config.read_text().replace("tile_size = 32", 'tile_size = 32\ninput_bands = ["B2", "B3", "B4"]'))
    env = {**os.environ, "ROLLOUT_CONFIG": str(config), "CDKTF_OUTDIR": str(tmp_path / "cdktf.out")}
    result = subprocess.run([sys.executable, str(ROOT / "main.py")], env=env, capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert (
        "model.input_bands: the config says ['B2', 'B3', 'B4'] but the built model reads ['B2', 'B3', 'B4', 'B8']"
        in result.stderr
    )


def test_short_artifact_references(tmp_path):
    config = load_config(write_project(tmp_path))
    first = build(config, log=quiet)
    save_weights(tmp_path / "seg", classes=3, seed=1)
    second = build(config, log=quiet)
    assert resolve_sha(config.artifact_dir, first.sha256[:8]) == first.sha256
    assert resolve_sha(config.artifact_dir, second.sha256) == second.sha256
    unknown = "0" * 6 if not {first.sha256[0], second.sha256[0]} & {"0"} else "f" * 6
    with pytest.raises(ManifestError, match="no artifact built in .* starts with '(0|f){6}'"):
        resolve_sha(config.artifact_dir, unknown)
    common = os.path.commonprefix([first.sha256, second.sha256])
    if len(common) >= 6:
        with pytest.raises(ManifestError, match="is ambiguous"):
            resolve_sha(config.artifact_dir, common)


def test_canary_with_a_short_reference_synthesizes_the_full_sha(tmp_path):
    import shutil

    from conftest import stack_json, synth

    path = write_project(tmp_path)
    first = build(load_config(path), log=quiet)
    save_weights(tmp_path / "seg", classes=3, seed=1)
    second = build(load_config(path), log=quiet)
    path.write_text(
        path.read_text()
        .replace("tile_size = 32", f'tile_size = 32\n[model.previous]\nsha256 = "{first.sha256[:7]}"')
        .replace('bucket = "acme-geo-dev-unet"', 'bucket = "acme-geo-dev-unet"\ntraffic_percent = 10')
    )
    config = load_config(path)
    outdir = synth(config, second, tmp_path / "cdktf.out", tmp_path / "state")
    models = list(stack_json(outdir, "dev-model")["resource"]["eevertex_model"].values())
    assert sorted(m["artifact_uri"].rstrip("/").rsplit("/", 1)[1] for m in models) == sorted(
        [first.sha256, second.sha256]
    )
    image = second.serving_image("ee-serving-pytorch-cpu")
    images = {m["container_image_uri"] for m in models}
    assert images == {f"us-central1-docker.pkg.dev/acme-geo-dev/ee-serving/ee-serving-pytorch-cpu@{image.digest}"}
    prod = stack_json(outdir, "prod-model")["resource"]["eevertex_model"]
    assert {r["container_image_uri"] for r in prod.values()} == {
        f"europe-west4-docker.pkg.dev/acme-geo-prod/ee-serving/ee-serving-pytorch-cpu@{image.digest}"
    }
    shutil.rmtree(outdir)


def test_starter_config_builds(tmp_path):
    from build_hooks.starter import starter

    write_project(tmp_path / "My_UNet")
    tmp_path = tmp_path / "My_UNet"
    out = tmp_path / "starter.toml"
    try:
        text = starter("seg.unet:make_model", out)
    finally:
        for name in ("seg", "seg.unet", "seg.helpers"):
            sys.modules.pop(name, None)
        sys.path.remove(str(tmp_path))
    assert 'payload_format = "ND_ARRAYS"' in text and "B2, B3, B4, B8" in text
    config = load_config(out)
    assert (config.model.name, config.model.framework, config.model.source) == (
        "my-unet",
        "pytorch",
        "seg.unet:make_model",
    )
    # The largest multiple of 16 whose ND_ARRAYS request of 4 bands fits in 1.5 MB (153 fits);
    # the bands written out, so the budget is checked before the build.
    assert (config.model.tile_size, config.model.input_bands) == (144, ("B2", "B3", "B4", "B8"))
    out.write_text(out.read_text().replace("tile_size = 144", "tile_size = 16"))
    assert build(load_config(out), log=quiet).output_bands[0].length == 3
    with pytest.raises(Exception, match="exists"):
        starter("seg.unet:make_model", out)


def test_raw_json_artifact_is_checked_through_the_handler(tmp_path):
    config = write_project(tmp_path)
    config.write_text(config.read_text().replace('"ND_ARRAYS"', '"RAW_JSON"'))
    messages = []
    build(load_config(config), log=messages.append)
    assert "build: ok model.pt2, tile 32x32: class_probs (32, 32, 3) (float32)" in messages
    assert "build: ok model.pt2, edge tile 32x32: class_probs (32, 32, 3) (float32)" in messages
