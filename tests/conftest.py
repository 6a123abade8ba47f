"""Shared fixtures: real artifacts built once per session, stacks synthesized once."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from config.rollout import RolloutConfig, parse_config  # noqa: E402


def example_data(name: str) -> dict:
    path = ROOT / ("rollout.toml" if name == "pytorch" else "examples/tensorflow.toml")
    return tomllib.loads(path.read_text())


def rollout_toml(dest: Path, artifact_dir: Path) -> Path:
    """rollout.toml, as text, with its artifact_dir pointing at an artifact already built."""
    text = (ROOT / "rollout.toml").read_text()
    dest.write_text(re.sub(r"(?m)^artifact_dir = .*$", f"artifact_dir = {json.dumps(str(artifact_dir))}", text))
    return dest


def config_in(tmp: Path, data: dict, artifact: str = "artifact") -> RolloutConfig:
    """The example config with its artifact redirected into tmp."""
    data = json.loads(json.dumps(data))
    data["model"]["artifact_dir"] = str(tmp / artifact)
    return parse_config(data, tmp / "rollout.toml")


@pytest.fixture(scope="session")
def torch_build(tmp_path_factory):
    """The built-in PyTorch example, really built: (config, manifest)."""
    from build_hooks.build import build

    tmp = tmp_path_factory.mktemp("torch")
    config = config_in(tmp, example_data("pytorch"))
    return config, build(config, log=lambda *_: None)


@pytest.fixture(scope="session")
def tf_build(tmp_path_factory):
    """The built-in Keras example (gRPC serialized tensors), really built."""
    from build_hooks.build import build

    tmp = tmp_path_factory.mktemp("tf")
    config = config_in(tmp, example_data("tensorflow"))
    return config, build(config, log=lambda *_: None)


def synth(config, manifest, outdir: Path, state_dir: Path) -> Path:
    from stacks.app import synthesize

    synthesize(config, manifest, outdir=outdir, state_dir=state_dir)
    return outdir


@pytest.fixture(scope="session")
def torch_synth(torch_build, tmp_path_factory) -> Path:
    config, manifest = torch_build
    tmp = tmp_path_factory.mktemp("synth-torch")
    return synth(config, manifest, tmp / "cdktf.out", tmp / "state")


@pytest.fixture(scope="session")
def tf_synth(tf_build, tmp_path_factory) -> Path:
    config, manifest = tf_build
    tmp = tmp_path_factory.mktemp("synth-tf")
    return synth(config, manifest, tmp / "cdktf.out", tmp / "state")


def stack_json(outdir: Path, stack: str) -> dict:
    return json.loads((outdir / "stacks" / stack / "cdk.tf.json").read_text())


def copy_stack(outdir: Path, stack: str, dest: Path) -> Path:
    shutil.copytree(outdir / "stacks" / stack, dest / stack)
    return dest / stack


@pytest.fixture(scope="session")
def provider_cli_config(tmp_path_factory) -> Path:
    """Our eevertex provider, installed as a user installs it (`python -m provider.install`):
    the Terraform CLI config to assign to TF_CLI_CONFIG_FILE."""
    from rehearsal.prerequisites import provider_python

    if not provider_python().exists():
        pytest.skip("set $EEV_PROVIDER_PYTHON to the provider's virtualenv python (`nox -s tests` does)")
    from provider.install import install

    tmp = tmp_path_factory.mktemp("provider")
    install(tmp / "mirror", tmp / "terraform.rc", str(provider_python()))
    return tmp / "terraform.rc"


# pytest-xdist deals whole modules to its workers (`--dist loadfile`, noxfile.py): a module's
# tests share its fixtures (a Terraform workspace each step applies to, a running container)
# and run in order. The modules that take minutes (a rehearsal, a build from nothing, a runtime
# of several GB), longest first, go first, so that no worker ends on one alone.
LONGEST_FIRST = (
    "test_rehearsal.py",
    "test_rehearsal_own_model.py",
    "test_rehearsal_tensorflow.py",
    "test_own_model.py",
    "test_image.py",
    "test_review.py",
    "test_rehearsal_verified.py",
    "test_build.py",
    "test_prebuilt.py",
    "test_cdktf_deploy.py",
    "test_gcloud.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: each module's own order is kept
