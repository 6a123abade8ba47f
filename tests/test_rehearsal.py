"""The offline rehearsal: real embedded Terraform, our provider (installed as a user does),
the Vertex AI and GCS emulators.

`rehearse()` raises at the first behaviour that is not as it must be (see
rehearsal/scenario.py); these tests run it and check what it saw. Here the built-in PyTorch
example's whole rehearsal; TensorFlow's, a user's own model's and verified promotion's each
in a module of its own (test_rehearsal_*.py), so that the workers run them side by side.
"""

from __future__ import annotations

import pytest
from conftest import ROOT
from rehearsal_support import embedded_terraform, needs_provider  # noqa: F401 - an autouse fixture

from rehearsal.prerequisites import PROVIDER_PYTHON_ENV
from rehearsal.scenario import rehearse
from rehearsal.steps import PrerequisiteMissing, next_version


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
