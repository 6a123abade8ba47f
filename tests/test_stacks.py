"""The synthesized Terraform JSON, one behaviour per test."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from conftest import ROOT, rollout_toml, stack_json, synth
from stacks import naming


def resource(config: dict, kind: str, name: str) -> dict:
    return config["resource"][kind][name]


def data_resources(config: dict, prefix: str) -> list[dict]:
    """terraform_data resources whose name starts with prefix, in name order."""
    found = config["resource"]["terraform_data"]
    return [found[k] for k in sorted(found) if k.startswith(prefix)]


def only(config: dict, prefix: str) -> dict:
    (found,) = data_resources(config, prefix)
    return found


def test_four_stacks_per_target(torch_synth):
    stacks = sorted(p.name for p in (torch_synth / "stacks").iterdir())
    assert stacks == [f"{t}-{k}" for t in ("dev", "prod") for k in sorted(naming.STACK_KINDS)]


def test_dependencies_bucket_model_deployment_endpoint(torch_synth):
    manifest = json.loads((torch_synth / "manifest.json").read_text())["stacks"]
    assert manifest["dev-bucket"]["dependencies"] == []
    assert manifest["dev-endpoint"]["dependencies"] == []
    assert manifest["dev-model"]["dependencies"] == ["dev-bucket"]
    assert sorted(manifest["dev-deployment"]["dependencies"]) == ["dev-endpoint", "dev-model"]


def test_bucket_secure_defaults(torch_synth):
    bucket = resource(stack_json(torch_synth, "dev-bucket"), "google_storage_bucket", "artifacts")
    assert {k: bucket[k] for k in ("name", "location", "uniform_bucket_level_access",
                                   "public_access_prevention", "versioning", "force_destroy")} == {
        "name": "acme-geo-dev-ee-models",
        "location": "US-CENTRAL1",
        "uniform_bucket_level_access": True,
        "public_access_prevention": "enforced",
        "versioning": {"enabled": True},
        "force_destroy": False,
    }
    assert "encryption" not in bucket
    assert bucket["logging"] == {"log_bucket": "acme-geo-dev-gcs-access-logs", "log_object_prefix": "acme-geo-dev-ee-models/"}


def test_bucket_cmek_when_configured(torch_synth):
    bucket = resource(stack_json(torch_synth, "prod-bucket"), "google_storage_bucket", "artifacts")
    assert bucket["encryption"] == {
        "default_kms_key_name": "projects/acme-geo-prod/locations/europe-west4/keyRings/ml/cryptoKeys/models"
    }
    endpoint = resource(stack_json(torch_synth, "prod-endpoint"), "google_vertex_ai_endpoint", "endpoint")
    assert endpoint["encryption_spec"]["kms_key_name"].endswith("/cryptoKeys/models")
    model = only(stack_json(torch_synth, "prod-model"), "model_")
    assert model["input"]["kms_key"] == bucket["encryption"]["default_kms_key_name"]
    assert model["triggers_replace"]["kms_key"] == model["input"]["kms_key"]
    assert "kms_key" not in only(stack_json(torch_synth, "dev-model"), "model_")["input"]


def test_bucket_labels_merge_target_and_tool_labels(torch_synth):
    bucket = resource(stack_json(torch_synth, "dev-bucket"), "google_storage_bucket", "artifacts")
    assert bucket["labels"] == {
        "env": "dev", "team": "geo-ml", "managed-by": "ee-vertex-cdktf",
        "ee-model": "landcover-torch", "rollout-target": "dev",
    }


def test_artifact_objects_are_content_addressed_and_kept(torch_build, torch_synth):
    _, manifest = torch_build
    objects = stack_json(torch_synth, "dev-bucket")["resource"]["google_storage_bucket_object"]
    assert [(o["name"], o["deletion_policy"]) for o in objects.values()] == [
        (f"models/landcover-torch/{manifest.sha256}/model.mar", "ABANDON")
    ]
    source = (torch_synth / "stacks" / "dev-bucket" / next(iter(objects.values()))["source"]).resolve()
    assert source.read_bytes()[:2] == b"PK"  # the real .mar (a zip)


def test_savedmodel_uploads_every_file(tf_build, tf_synth):
    _, manifest = tf_build
    objects = stack_json(tf_synth, "staging-bucket")["resource"]["google_storage_bucket_object"]
    names = sorted(o["name"] for o in objects.values())
    prefix = f"models/landcover-keras/{manifest.sha256}/"
    assert names == sorted(prefix + f.path for f in manifest.files)
    assert prefix + "saved_model.pb" in names


def test_model_input_carries_grpc_port_8500(tf_build, tf_synth):
    _, manifest = tf_build
    model = only(stack_json(tf_synth, "staging-model"), "model_")
    assert model["input"]["container"]["grpc_ports"] == [8500]
    assert model["input"]["payload_format"] == "GRPC_SERIALIZED_TF_TENSORS"
    assert model["input"]["artifact_uri"] == f"gs://acme-geo-staging-ee-models/models/landcover-keras/{manifest.sha256}/"
    assert model["triggers_replace"]["artifact_sha256"] == manifest.sha256


def test_model_input_shows_every_setting(torch_build, torch_synth):
    _, manifest = torch_build
    model = only(stack_json(torch_synth, "dev-model"), "model_")
    assert model["input"]["model_id"] == f"landcover-torch-{manifest.sha256[:12]}"
    assert model["input"]["container"] == {
        "image_uri": "us-docker.pkg.dev/vertex-ai/prediction/pytorch-cpu.2-4:latest",
        "env": [{"name": "EEV_TORCH_THREADS", "value": "4"}],
        "grpc_ports": [],
    }
    bands = stack_json(torch_synth, "dev-model")["output"]["earth_engine_bands"]["value"]
    assert bands["input_bands"] == ["B2", "B3", "B4", "B5", "B6", "B7"]
    assert bands["output_bands"] == {"probabilities": {"name": "probabilities", "dimensions": 1, "length": 3}}


def test_model_hooks_upload_and_delete_from_state(torch_synth):
    model = only(stack_json(torch_synth, "dev-model"), "model_")
    hooks = [p["local-exec"] for p in model["provisioner"]]
    assert [(h["command"].split()[-1], h.get("when")) for h in hooks] == [
        ("model-upload", None), ("model-delete", "destroy")
    ]
    assert all(h["environment"] == {"EEV_HOOK_INPUT": "${jsonencode(self.input)}"} for h in hooks)
    # The working dir is the project root, as seen from the stack directory.
    assert (torch_synth / "stacks" / "dev-model" / hooks[0]["working_dir"]).resolve() == ROOT
    # A plain command, the same in cdk.tf.json and in `cdktf synth --hcl` (which mangles
    # quotes and `$${...}` escapes), running a script that exists there.
    assert hooks[0]["command"] == "sh stacks/hooks/hook.sh model-upload"
    assert (ROOT / hooks[0]["command"].split()[1]).is_file()


def test_deployment_input_and_in_place_settings(torch_synth):
    config = stack_json(torch_synth, "prod-deployment")
    deployment = only(config, "deployment_")
    traffic = resource(config, "terraform_data", "traffic")
    assert deployment["input"]["machine_spec"] == {"machine_type": "n1-standard-8", "accelerator_count": 0}
    assert deployment["input"]["service_account"] == "vertex-serving@acme-geo-prod.iam.gserviceaccount.com"
    assert (deployment["input"]["min_replica_count"], deployment["input"]["max_replica_count"]) == (2, 10)
    # Replicas and traffic change in place (the traffic hook); the rest redeploys.
    assert not {"traffic_percent", "min_replica_count", "max_replica_count"} & set(deployment["triggers_replace"])
    deployed_id = deployment["input"]["deployed_model_id"]
    assert traffic["triggers_replace"]["split"] == {deployed_id: 100}
    assert traffic["depends_on"] == [f"terraform_data.deployment_{deployed_id}"]
    hooks = {k: [p["local-exec"]["command"].split()[-1] for p in r["provisioner"]]
             for k, r in config["resource"]["terraform_data"].items()}
    assert hooks == {f"deployment_{deployed_id}": ["deploy"], "traffic": ["traffic"], "release": ["release"]}
    release = resource(config, "terraform_data", "release")
    assert release["provisioner"][0]["local-exec"]["when"] == "destroy"
    assert release["input"]["endpoint"] == deployment["input"]["endpoint"]


def test_deterministic_ids(torch_build, torch_synth):
    _, manifest = torch_build
    deployment = only(stack_json(torch_synth, "dev-deployment"), "deployment_")["input"]
    endpoint = resource(stack_json(torch_synth, "dev-endpoint"), "google_vertex_ai_endpoint", "endpoint")
    assert endpoint["name"] == naming.endpoint_id("acme-geo-dev", "us-central1", "landcover-torch")
    assert re.fullmatch(r"[1-9][0-9]{9}", endpoint["name"])
    assert deployment["endpoint"].endswith(f"/endpoints/{endpoint['name']}")
    assert re.fullmatch(r"[1-9][0-9]{9}", deployment["deployed_model_id"])


def test_predict_members_get_a_predict_only_role_on_the_endpoint(torch_synth):
    stack = stack_json(torch_synth, "dev-endpoint")
    config = stack["resource"]
    role = config["google_project_iam_custom_role"]["predict_role"]
    assert role["permissions"] == ["aiplatform.endpoints.predict"]
    assert "google_project_iam_member" not in config
    assert list(config["google_vertex_ai_endpoint_iam_member"].values()) == [{
        "//": {"metadata": {"path": "dev-endpoint/predict_endpoint_member_0", "uniqueId": "predict_endpoint_member_0"}},
        "provider": "google-beta",
        "project": "acme-geo-dev",
        "location": "us-central1",
        "endpoint": "${google_vertex_ai_endpoint.endpoint.name}",
        "role": "${google_project_iam_custom_role.predict_role.name}",
        "member": "group:geo-ml@example.com",
    }]
    assert stack["provider"]["google-beta"] == [{"project": "acme-geo-dev", "region": "us-central1"}]


def test_predict_scope_project_grants_the_role_on_the_project(torch_build, tmp_path):
    from config.rollout import parse_config

    config, manifest = torch_build
    data = config.model_dump(mode="json", exclude={"path"})
    data["targets"][0]["predict_scope"] = "project"
    stack = stack_json(synth(parse_config(data, config.path), manifest, tmp_path / "out", tmp_path / "state"),
                       "dev-endpoint")
    members = stack["resource"]["google_project_iam_member"]
    assert [{k: m[k] for k in ("project", "role", "member")} for m in members.values()] == [{
        "project": "acme-geo-dev",
        "role": "${google_project_iam_custom_role.predict_role.name}",
        "member": "group:geo-ml@example.com",
    }]
    assert "google_vertex_ai_endpoint_iam_member" not in stack["resource"]
    assert "google-beta" not in stack["provider"]


def test_synth_is_deterministic_and_machine_independent(torch_build, torch_synth, tmp_path):
    config, manifest = torch_build
    again = synth(config, manifest, tmp_path / "cdktf.out", tmp_path / "state")
    for stack in ("dev-bucket", "dev-model", "dev-deployment", "prod-endpoint"):
        first = stack_json(torch_synth, stack)
        second = stack_json(again, stack)
        # Only the relative paths to this synth's folders may differ.
        assert _strip_paths(first) == _strip_paths(second)
    text = (again / "stacks" / "dev-bucket" / "cdk.tf.json").read_text()
    assert str(tmp_path) not in text and "/work/" not in text


def _strip_paths(config: dict) -> str:
    return re.sub(r'"(\.\./)+[^"]*"', '"<path>"', json.dumps(config, sort_keys=True))


def test_state_backend_is_local_per_stack_or_gcs(torch_build, tmp_path):
    config, manifest = torch_build
    local = stack_json(synth(config, manifest, tmp_path / "a", tmp_path / "state"), "dev-model")
    assert Path(local["terraform"]["backend"]["local"]["path"]).name == "dev-model.tfstate"

    from config.rollout import parse_config

    data = config.model_dump(mode="json", exclude={"path"})
    data["targets"][0]["state_bucket"] = "acme-tf-state"
    remote = parse_config(data, config.path)
    gcs = stack_json(synth(remote, manifest, tmp_path / "b", tmp_path / "state"), "dev-model")
    assert gcs["terraform"]["backend"]["gcs"] == {"bucket": "acme-tf-state", "prefix": "landcover-torch/dev-model"}


def test_main_reports_missing_artifact(tmp_path):
    import subprocess
    import sys

    config = tmp_path / "rollout.toml"
    config.write_text((ROOT / "rollout.toml").read_text().replace('"build/landcover-torch"', '"nowhere"'))
    result = subprocess.run(
        [sys.executable, "main.py"], cwd=ROOT, capture_output=True, text=True,
        env={"ROLLOUT_CONFIG": str(config), "CDKTF_OUTDIR": str(tmp_path / "out"), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2
    assert "model.artifact_dir: no manifest.json" in result.stderr and "nox -s build" in result.stderr
    assert not (tmp_path / "out").exists()


def test_main_reports_tampered_artifact(torch_build, tmp_path):
    from build_hooks.manifest import ManifestError
    from stacks.app import load_artifact
    import pytest
    import shutil

    config, _ = torch_build
    copy = tmp_path / "artifact"
    shutil.copytree(config.artifact_dir, copy)
    (copy / "artifact" / "model.mar").write_bytes(b"edited")
    from config.rollout import parse_config

    data = config.model_dump(mode="json", exclude={"path"})
    data["model"]["artifact_dir"] = str(copy)
    with pytest.raises(ManifestError, match="do not match manifest.json"):
        load_artifact(parse_config(data, config.path))


def test_canary_keeps_the_previous_artifact_declared(torch_build, tmp_path):
    from config.rollout import parse_config

    config, manifest = torch_build
    data = config.model_dump(mode="json", exclude={"path"})
    previous = "ab" * 32
    data["model"]["previous"] = {"sha256": previous}
    data["targets"][0]["traffic_percent"] = 10
    canary = parse_config(data, config.path)
    out = synth(canary, manifest, tmp_path / "out", tmp_path / "state")

    models = data_resources(stack_json(out, "dev-model"), "model_")
    assert [m["input"]["artifact_sha256"] for m in models] == sorted([manifest.sha256, previous], key=lambda sha: f"model_landcover_torch_{sha[:12]}")
    deployments = {d["input"]["artifact_sha256"]: d["input"] for d in data_resources(stack_json(out, "dev-deployment"), "deployment_")}
    split = resource(stack_json(out, "dev-deployment"), "terraform_data", "traffic")["input"]["split"]
    assert split == {deployments[manifest.sha256]["deployed_model_id"]: 10, deployments[previous]["deployed_model_id"]: 90}
    # prod is at 100%: the previous artifact is promoted away there.
    assert len(data_resources(stack_json(out, "prod-deployment"), "deployment_")) == 1


def test_canary_without_previous_is_an_error(torch_build):
    import pytest
    from config.rollout import ConfigError, parse_config

    config, _ = torch_build
    data = config.model_dump(mode="json", exclude={"path"})
    data["targets"][0]["traffic_percent"] = 10
    with pytest.raises(ConfigError, match="targets.0.traffic_percent: 10 leaves 90% for the previous artifact"):
        parse_config(data, config.path)


def _as_hcl_types(value):
    """What `cdktf synth --hcl` does to the inputs: numeric-looking strings become numbers."""
    if isinstance(value, dict):
        return {k: _as_hcl_types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_hcl_types(v) for v in value]
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value):
        return int(value)
    return value


def test_hooks_read_inputs_written_as_hcl(torch_synth):
    """The way out of cdktf (`cdktf synth --hcl`) turns deployed-model IDs and env values
    into HCL numbers; the hooks get back exactly the synthesized input."""
    from stacks.hooks.__main__ import restore_types

    inputs = [r["input"] for kind in ("model", "deployment")
              for r in stack_json(torch_synth, f"dev-{kind}")["resource"]["terraform_data"].values()]
    assert any(isinstance(_as_hcl_types(i).get("deployed_model_id"), int) for i in inputs)
    assert any(_as_hcl_types(i).get("container", {}).get("env") == [{"name": "EEV_TORCH_THREADS", "value": 4}]
               for i in inputs)
    for synthesized in inputs:
        assert restore_types(json.loads(json.dumps(_as_hcl_types(synthesized)))) == synthesized
