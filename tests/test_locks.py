"""The serving images install what the export ran with: their locks pin the framework at the
project's own version, every package with its sha256."""

from __future__ import annotations

import re
import tomllib

import pytest
from conftest import ROOT

from serving.image import locked_wheels
from serving.lock import read_lock

PINS = {
    re.split(r"[=\[]", r)[0].lower(): r.split("==")[1]
    for extra in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"].values()
    for r in extra
    if "==" in r
}


@pytest.mark.parametrize("lock", ["pytorch-cpu", "pytorch-gpu"])
def test_the_pytorch_images_serve_the_exports_torch(lock):
    pins = read_lock(ROOT / "serving" / "requirements" / f"{lock}.txt")
    assert pins["torch"].split("+")[0] == PINS["torch"].split("+")[0]
    assert pins["torch"].endswith("+cpu") == (lock == "pytorch-cpu")
    for name in ("google-cloud-aiplatform", "orjson", "numpy"):
        if name in PINS:
            assert pins[name] == PINS[name], name


def test_the_tensorflow_stand_in_serves_the_exports_tensorflow():
    pins = read_lock(ROOT / "serving" / "requirements" / "tf-serving-standin.txt")
    assert pins["tensorflow-cpu"] == PINS["tensorflow-cpu"]
    assert pins["tensorflow-serving-api"] == PINS["tensorflow-cpu"]  # TensorFlow Serving's API of the same release


@pytest.mark.parametrize("lock", ["pytorch-cpu", "pytorch-gpu", "tf-serving-standin"])
def test_every_locked_package_has_its_sha256(lock):
    path = ROOT / "serving" / "requirements" / f"{lock}.txt"
    assert len(locked_wheels(path)) == len(read_lock(path)) > 10


def test_tensorflow_servings_image_is_the_exports_version():
    from config.images import TF_SERVING_BASE

    version = PINS["tensorflow-cpu"]
    assert {
        "cpu": f"docker.io/tensorflow/serving:{version}",
        "gpu": f"docker.io/tensorflow/serving:{version}-gpu",
    } == TF_SERVING_BASE
