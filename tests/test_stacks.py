"""The synthesized Terraform JSON, one behaviour per test."""

from __future__ import annotations

import json
import re
from pathlib import Path

from conftest import ROOT, stack_json, synth

from stacks import naming


def resource(config: dict, kind: str, name: str) -> dict:
    return config["resource"][kind][name]


def of_type(config: dict, kind: str) -> list[dict]:
    """Resources of one type, in name order."""
    found = config["resource"].get(kind, {})
    return [found[k] for k in sorted(found)]


def only(config: dict, kind: str) -> dict:
    (found,) = of_type(config, kind)
    return found


def attributes(resource: dict) -> dict:
    """A resource's attributes, without cdktf's metadata and Terraform meta-arguments."""
    return {k: v for k, v in resource.items() if k not in ("//", "lifecycle", "depends_on")}


def test_five_stacks_per_target_on_our_image(torch_synth):
    stacks = sorted(p.name for p in (torch_synth / "stacks").iterdir())
    assert stacks == [f"{t}-{k}" for t in ("dev", "prod") for k in sorted(naming.STACK_KINDS)]


def test_dependencies_bucket_registry_model_deployment_endpoint(torch_synth):
    manifest = json.loads((torch_synth / "manifest.json").read_text())["stacks"]
    assert manifest["dev-bucket"]["dependencies"] == []
    assert manifest["dev-registry"]["dependencies"] == []
    assert manifest["dev-endpoint"]["dependencies"] == []
    assert sorted(manifest["dev-model"]["dependencies"]) == ["dev-bucket", "dev-registry"]
    assert sorted(manifest["dev-deployment"]["dependencies"]) == ["dev-endpoint", "dev-model"]


def test_bucket_secure_defaults(torch_synth):
    bucket = resource(stack_json(torch_synth, "dev-bucket"), "google_storage_bucket", "artifacts")
    assert {
        k: bucket[k]
        for k in (
            "name",
            "location",
            "uniform_bucket_level_access",
            "public_access_prevention",
            "versioning",
            "force_destroy",
        )
    } == {
        "name": "acme-geo-dev-ee-models",
        "location": "US-CENTRAL1",
        "uniform_bucket_level_access": True,
        "public_access_prevention": "enforced",
        "versioning": {"enabled": True},
        "force_destroy": False,
    }
    assert "encryption" not in bucket
    assert bucket["logging"] == {
        "log_bucket": "acme-geo-dev-gcs-access-logs",
        "log_object_prefix": "acme-geo-dev-ee-models/",
    }


def test_bucket_cmek_when_configured(torch_synth):
    bucket = resource(stack_json(torch_synth, "prod-bucket"), "google_storage_bucket", "artifacts")
    assert bucket["encryption"] == {
        "default_kms_key_name": "projects/acme-geo-prod/locations/europe-west4/keyRings/ml/cryptoKeys/models"
    }
    endpoint = resource(stack_json(torch_synth, "prod-endpoint"), "google_vertex_ai_endpoint", "endpoint")
    assert endpoint["encryption_spec"]["kms_key_name"].endswith("/cryptoKeys/models")
    model = only(stack_json(torch_synth, "prod-model"), "eevertex_model")
    assert model["kms_key_name"] == bucket["encryption"]["default_kms_key_name"]
    assert "kms_key_name" not in only(stack_json(torch_synth, "dev-model"), "eevertex_model")


def test_bucket_labels_merge_target_and_tool_labels(torch_synth):
    bucket = resource(stack_json(torch_synth, "dev-bucket"), "google_storage_bucket", "artifacts")
    assert bucket["labels"] == {
        "env": "dev",
        "team": "geo-ml",
        "managed-by": "ee-vertex-cdktf",
        "ee-model": "landcover-torch",
        "rollout-target": "dev",
    }


def test_artifact_objects_are_content_addressed_and_kept(torch_build, torch_synth):
    _, manifest = torch_build
    objects = stack_json(torch_synth, "dev-bucket")["resource"]["google_storage_bucket_object"]
    assert sorted((o["name"], o["deletion_policy"]) for o in objects.values()) == [
        (f"models/landcover-torch/{manifest.sha256}/ee_contract.json", "ABANDON"),
        (f"models/landcover-torch/{manifest.sha256}/golden.json", "ABANDON"),
        (f"models/landcover-torch/{manifest.sha256}/model.pt2", "ABANDON"),
    ]
    program = next(o for o in objects.values() if o["name"].endswith("model.pt2"))
    source = (torch_synth / "stacks" / "dev-bucket" / program["source"]).resolve()
    assert source.read_bytes()[:2] == b"PK"  # the real program (a zip)


def test_savedmodel_uploads_every_file(tf_build, tf_synth):
    _, manifest = tf_build
    objects = stack_json(tf_synth, "staging-bucket")["resource"]["google_storage_bucket_object"]
    names = sorted(o["name"] for o in objects.values())
    prefix = f"models/landcover-keras/{manifest.sha256}/"
    assert names == sorted(prefix + f.path for f in manifest.files)
    assert prefix + "1/saved_model.pb" in names  # TensorFlow Serving's <base>/<version>/


def test_model_carries_grpc_port_8500(tf_build, tf_synth):
    _, manifest = tf_build
    model = only(stack_json(tf_synth, "staging-model"), "eevertex_model")
    assert model["container_grpc_ports"] == [8500]
    assert model["artifact_uri"] == f"gs://acme-geo-staging-ee-models/models/landcover-keras/{manifest.sha256}/"
    assert "(GRPC_SERIALIZED_TF_TENSORS)" in model["description"]


def test_model_shows_every_setting(torch_build, torch_synth):
    _, manifest = torch_build
    config = stack_json(torch_synth, "dev-model")
    model = only(config, "eevertex_model")
    alias = model["version_alias"]
    assert attributes(model) == {
        "project": "acme-geo-dev",
        "region": "us-central1",
        # One parent model per model name; each artifact or container is a version of it.
        "model_id": "landcover-torch",
        "version_alias": alias,
        "display_name": "landcover-torch",
        "description": "pytorch model for Earth Engine (ND_ARRAYS)",
        "labels": {
            "env": "dev",
            "team": "geo-ml",
            "managed-by": "ee-vertex-cdktf",
            "ee-model": "landcover-torch",
            "rollout-target": "dev",
        },
        "artifact_uri": f"gs://acme-geo-dev-ee-models/models/landcover-torch/{manifest.sha256}/",
        # Our image in the target's own registry, by digest: the plan names the exact image.
        "container_image_uri": "us-central1-docker.pkg.dev/acme-geo-dev/ee-serving/ee-serving-pytorch-cpu@"
        + manifest.serving_image("ee-serving-pytorch-cpu").digest,
        "container_predict_route": "/predict",
        "container_health_route": "/health",
        "container_env": {"EEV_TORCH_THREADS": "4"},
    }
    assert model["lifecycle"] == {"create_before_destroy": True}
    # The image the version runs is pushed first, by our provider, at that digest.
    assert config["resource"].keys() == {"eevertex_image", "eevertex_model"}
    image = only(config, "eevertex_image")
    built = manifest.serving_image("ee-serving-pytorch-cpu")
    assert {k: image[k] for k in ("repository", "name", "digest", "tag")} == {
        "repository": "us-central1-docker.pkg.dev/acme-geo-dev/ee-serving",
        "name": "ee-serving-pytorch-cpu",
        "digest": built.digest,
        "tag": built.tag,
    }
    assert list(config["resource"]["eevertex_model"]) == [f"model_{alias.replace('-', '_')}"]
    assert config["output"]["model_version"]["value"] == f"${{eevertex_model.model_{alias.replace('-', '_')}.id}}"
    assert "earth_engine_bands" not in config["output"]


def test_registry_per_target_with_cmek_immutable_tags_and_a_safe_cleanup(torch_build, torch_synth):
    _, manifest = torch_build
    image = manifest.serving_image("ee-serving-pytorch-cpu")
    prod = stack_json(torch_synth, "prod-registry")
    registry = resource(prod, "google_artifact_registry_repository", "registry")
    assert {
        k: registry[k]
        for k in (
            "project",
            "location",
            "repository_id",
            "format",
            "kms_key_name",
            "docker_config",
            "deletion_policy",
            "cleanup_policy_dry_run",
        )
    } == {
        "project": "acme-geo-prod",
        "location": "europe-west4",
        "repository_id": "ee-serving",
        "format": "DOCKER",
        "kms_key_name": "projects/acme-geo-prod/locations/europe-west4/keyRings/ml/cryptoKeys/models",
        "docker_config": {"immutable_tags": True},
        "deletion_policy": "ABANDON",
        "cleanup_policy_dry_run": False,
    }
    assert registry["cleanup_policies"] == [
        {
            "id": "keep-served-images",
            "action": "KEEP",
            "condition": {"tag_state": "TAGGED", "tag_prefixes": [image.tag]},
        },
        {"id": "keep-most-recent", "action": "KEEP", "most_recent_versions": {"keep_count": 10}},
        {
            "id": "delete-older-than-90-days",
            "action": "DELETE",
            "condition": {"tag_state": "ANY", "older_than": "7776000s"},
        },
    ]
    reader = resource(prod, "google_artifact_registry_repository_iam_member", "vertex_ai_reader")
    assert reader["role"] == "roles/artifactregistry.reader"
    assert reader["member"] == (
        "serviceAccount:service-${data.google_project.project.number}@gcp-sa-aiplatform.iam.gserviceaccount.com"
    )
    assert prod["output"]["images"]["value"] == [
        f"europe-west4-docker.pkg.dev/acme-geo-prod/ee-serving/ee-serving-pytorch-cpu@{image.digest}"
    ]
    assert "kms_key_name" not in resource(
        stack_json(torch_synth, "dev-registry"), "google_artifact_registry_repository", "registry"
    )


def test_no_registry_where_a_prebuilt_image_serves(torch_build, tmp_path, monkeypatch):
    from config.rollout import parse_config

    monkeypatch.setenv("EEV_TODAY", "2026-12-01")
    config, manifest = torch_build
    data = config.model_dump(mode="json", exclude={"path"})
    data["targets"][1]["serving_image"] = "europe-docker.pkg.dev/vertex-ai/prediction/pytorch-cpu.2-4:latest"
    out = synth(parse_config(data, config.path), manifest, tmp_path / "out", tmp_path / "state")
    stacks = {p.name for p in (out / "stacks").iterdir()}
    assert "dev-registry" in stacks and "prod-registry" not in stacks
    assert only(stack_json(out, "prod-model"), "eevertex_model")["container_image_uri"] == (
        "europe-docker.pkg.dev/vertex-ai/prediction/pytorch-cpu.2-4:latest"
    )


def test_version_alias_is_deterministic_and_valid(torch_build, torch_synth):
    _, manifest = torch_build
    alias = only(stack_json(torch_synth, "dev-model"), "eevertex_model")["version_alias"]
    # Model.version_aliases: [a-z][a-zA-Z0-9-]{0,126}[a-z0-9] (aiplatform_v1/types/model.py)
    assert re.fullmatch(r"[a-z][a-zA-Z0-9-]{0,126}[a-z0-9]", alias)
    assert re.fullmatch(rf"a{manifest.sha256[:12]}-[0-9a-f]{{8}}", alias)


def test_container_change_is_a_new_version_of_the_same_model(torch_build, tmp_path, torch_synth):
    from config.rollout import parse_config

    config, manifest = torch_build
    data = config.model_dump(mode="json", exclude={"path"})
    data["model"]["env"] = {"EEV_TORCH_THREADS": "2"}
    out = synth(parse_config(data, config.path), manifest, tmp_path / "out", tmp_path / "state")
    before = only(stack_json(torch_synth, "dev-model"), "eevertex_model")
    after = only(stack_json(out, "dev-model"), "eevertex_model")
    assert after["model_id"] == before["model_id"] == "landcover-torch"
    assert after["version_alias"] != before["version_alias"]
    assert after["version_alias"].startswith(f"a{manifest.sha256[:12]}-")
    deployment = only(stack_json(out, "dev-deployment"), "eevertex_deployment")
    assert deployment["model"].endswith(f"/models/landcover-torch@{after['version_alias']}")


def test_provider_block_and_source(torch_synth):
    for stack in ("dev-model", "dev-deployment"):
        config = stack_json(torch_synth, stack)
        assert config["terraform"]["required_providers"] == {
            "eevertex": {"source": "ee-vertex.local/ee/eevertex", "version": "0.1.0"}
        }
        # Google's regional endpoint and Application Default Credentials: nothing to set.
        assert config["provider"] == {"eevertex": [{}]}


def test_provider_points_at_an_emulator_only_when_asked(torch_build, tmp_path):
    from stacks.app import build_app
    from stacks.environment import VertexProviderConfig

    config, manifest = torch_build
    emulator = VertexProviderConfig(api_endpoint="http://127.0.0.1:8123", credentials="none")
    build_app(config, manifest, outdir=tmp_path / "out", state_dir=tmp_path / "state", vertex_provider=emulator).synth()
    for stack in ("dev-model", "prod-deployment"):
        assert stack_json(tmp_path / "out", stack)["provider"] == {
            "eevertex": [{"api_endpoint": "http://127.0.0.1:8123", "credentials": "none"}]
        }


def test_no_terraform_data_or_local_exec(torch_synth, tf_synth):
    for outdir in (torch_synth, tf_synth):
        for stack_dir in (outdir / "stacks").iterdir():
            text = (stack_dir / "cdk.tf.json").read_text()
            assert "terraform_data" not in text and "local-exec" not in text and "provisioner" not in text, stack_dir


def test_deployment_settings_and_in_place_split(torch_build, torch_synth):
    _, manifest = torch_build
    config = stack_json(torch_synth, "prod-deployment")
    deployment = only(config, "eevertex_deployment")
    model = only(stack_json(torch_synth, "prod-model"), "eevertex_model")
    endpoint = resource(stack_json(torch_synth, "prod-endpoint"), "google_vertex_ai_endpoint", "endpoint")
    deployed_id = deployment["deployed_model_id"]
    assert attributes(deployment) == {
        "project": "acme-geo-prod",
        "region": "europe-west4",
        "endpoint_id": endpoint["name"],
        "model": f"projects/acme-geo-prod/locations/europe-west4/models/landcover-torch@{model['version_alias']}",
        "deployed_model_id": deployed_id,
        "display_name": f"landcover-torch-{model['version_alias']}",
        "machine_type": "n1-standard-8",
        "min_replica_count": 2,
        "max_replica_count": 10,
        "service_account": "vertex-serving@acme-geo-prod.iam.gserviceaccount.com",
        # Defaults said outright, so removing a setting from the config sets it back.
        "autoscaling_cpu_utilization_target": 60,
        "disable_container_logging": False,
        "enable_access_logging": False,
    }
    assert deployment["lifecycle"] == {"create_before_destroy": True}
    traffic = resource(config, "eevertex_traffic_split", "traffic")
    assert attributes(traffic) == {
        "project": "acme-geo-prod",
        "region": "europe-west4",
        "endpoint_id": endpoint["name"],
        "split": {deployed_id: 100},
        # The build's golden tile, uploaded with the artifact: checked when the deployment takes traffic.
        "verification": {deployed_id: f"{model['artifact_uri']}golden.json#sha256={manifest.golden_sha256}"},
    }
    assert traffic["depends_on"] == [f"eevertex_deployment.deployment_{model['version_alias'].replace('-', '_')}"]
    assert config["output"]["traffic_split"]["value"] == {deployed_id: 100}


def test_deterministic_ids(torch_build, torch_synth):
    deployment = only(stack_json(torch_synth, "dev-deployment"), "eevertex_deployment")
    endpoint = resource(stack_json(torch_synth, "dev-endpoint"), "google_vertex_ai_endpoint", "endpoint")
    assert endpoint["name"] == naming.endpoint_id("acme-geo-dev", "us-central1", "landcover-torch")
    assert re.fullmatch(r"[1-9][0-9]{8}", endpoint["name"])
    assert deployment["endpoint_id"] == endpoint["name"]
    # DeployedModel.id: 1-10 digits (aiplatform_v1/types/endpoint.py).
    assert re.fullmatch(r"[1-9][0-9]{0,9}", deployment["deployed_model_id"])


def test_predict_members_get_a_predict_only_role_on_the_endpoint(torch_synth):
    stack = stack_json(torch_synth, "dev-endpoint")
    config = stack["resource"]
    role = config["google_project_iam_custom_role"]["predict_role"]
    assert role["permissions"] == ["aiplatform.endpoints.predict"]
    assert "google_project_iam_member" not in config
    assert list(config["google_vertex_ai_endpoint_iam_member"].values()) == [
        {
            "//": {
                "metadata": {"path": "dev-endpoint/predict_endpoint_member_0", "uniqueId": "predict_endpoint_member_0"}
            },
            "provider": "google-beta",
            "project": "acme-geo-dev",
            "location": "us-central1",
            "endpoint": "${google_vertex_ai_endpoint.endpoint.name}",
            "role": "${google_project_iam_custom_role.predict_role.name}",
            "member": "group:geo-ml@example.com",
        }
    ]
    assert stack["provider"]["google-beta"] == [{"project": "acme-geo-dev", "region": "us-central1"}]


def test_predict_scope_project_grants_the_role_on_the_project(torch_build, tmp_path):
    from config.rollout import parse_config

    config, manifest = torch_build
    data = config.model_dump(mode="json", exclude={"path"})
    data["targets"][0]["predict_scope"] = "project"
    stack = stack_json(
        synth(parse_config(data, config.path), manifest, tmp_path / "out", tmp_path / "state"), "dev-endpoint"
    )
    members = stack["resource"]["google_project_iam_member"]
    assert [{k: m[k] for k in ("project", "role", "member")} for m in members.values()] == [
        {
            "project": "acme-geo-dev",
            "role": "${google_project_iam_custom_role.predict_role.name}",
            "member": "group:geo-ml@example.com",
        }
    ]
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
        [sys.executable, "main.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"ROLLOUT_CONFIG": str(config), "CDKTF_OUTDIR": str(tmp_path / "out"), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2
    assert "model.artifact_dir: no manifest.json" in result.stderr and "nox -s build" in result.stderr
    assert not (tmp_path / "out").exists()


def test_main_reports_tampered_artifact(torch_build, tmp_path):
    import shutil

    import pytest

    from build_hooks.manifest import ManifestError
    from stacks.app import load_artifact

    config, manifest = torch_build
    copy = tmp_path / "artifact"
    shutil.copytree(config.artifact_dir, copy)
    (copy / manifest.artifact_root / "model.mar").write_bytes(b"edited")
    from config.rollout import parse_config

    data = config.model_dump(mode="json", exclude={"path"})
    data["model"]["artifact_dir"] = str(copy)
    with pytest.raises(ManifestError, match="do not match manifest.json"):
        load_artifact(parse_config(data, config.path))


def test_verify_promotion_false_moves_traffic_unchecked(torch_build, tmp_path):
    from config.rollout import parse_config

    config, manifest = torch_build
    data = config.model_dump(mode="json", exclude={"path"})
    data["targets"][0]["verify_promotion"] = False
    out = synth(parse_config(data, config.path), manifest, tmp_path / "out", tmp_path / "state")
    assert "verification" not in resource(stack_json(out, "dev-deployment"), "eevertex_traffic_split", "traffic")
    assert "verification" in resource(stack_json(out, "prod-deployment"), "eevertex_traffic_split", "traffic")


def _canary(torch_build, tmp_path, percent: int = 10):
    from config.rollout import parse_config

    config, manifest = torch_build
    data = config.model_dump(mode="json", exclude={"path"})
    previous = "ab" * 32
    data["model"]["previous"] = {"sha256": previous}
    data["targets"][0]["traffic_percent"] = percent
    tmp_path.mkdir(parents=True, exist_ok=True)
    return synth(parse_config(data, config.path), manifest, tmp_path / "out", tmp_path / "state"), previous


def test_canary_keeps_the_previous_version_deployed(torch_build, tmp_path):
    _, manifest = torch_build
    out, previous = _canary(torch_build, tmp_path)
    models = {m["artifact_uri"].split("/")[-2]: m for m in of_type(stack_json(out, "dev-model"), "eevertex_model")}
    assert set(models) == {manifest.sha256, previous}
    assert {m["model_id"] for m in models.values()} == {"landcover-torch"}
    config = stack_json(out, "dev-deployment")
    deployments = {d["model"].split("@")[1]: d for d in of_type(config, "eevertex_deployment")}
    new = deployments[models[manifest.sha256]["version_alias"]]["deployed_model_id"]
    old = deployments[models[previous]["version_alias"]]["deployed_model_id"]
    # The plan shows the exact split: what the canary gets is what the apply gives it.
    assert resource(config, "eevertex_traffic_split", "traffic")["split"] == {new: 10, old: 90}
    # Only the new version is checked when it takes traffic: the previous one served already.
    assert list(resource(config, "eevertex_traffic_split", "traffic")["verification"]) == [new]
    assert len(resource(config, "eevertex_traffic_split", "traffic")["depends_on"]) == 2
    # prod is at 100%: the previous version stays uploaded (the model stack is applied
    # first, so it must outlive the deployment that moves off it) but is not deployed.
    assert len(of_type(stack_json(out, "prod-model"), "eevertex_model")) == 2
    assert len(of_type(stack_json(out, "prod-deployment"), "eevertex_deployment")) == 1


def test_promotion_and_rollback_only_change_deployments(torch_build, tmp_path):
    """Canary 10 -> promote 100 -> roll back 0: the model stack stays the same, the new
    version's deployment keeps its Terraform address, the split is exact in each plan."""
    canary, previous = _canary(torch_build, tmp_path / "canary", 10)
    promoted, _ = _canary(torch_build, tmp_path / "promoted", 100)
    rolled_back, _ = _canary(torch_build, tmp_path / "rolled_back", 0)
    models = [stack_json(out, "dev-model")["resource"] for out in (canary, promoted, rolled_back)]
    assert models[0] == models[1] == models[2]
    by_alias = {m["artifact_uri"].split("/")[-2]: name for name, m in models[0]["eevertex_model"].items()}
    new, old = (by_alias[sha].replace("model_", "deployment_") for sha in (torch_build[1].sha256, previous))
    deployments = [stack_json(out, "dev-deployment")["resource"] for out in (canary, promoted, rolled_back)]
    assert [sorted(d["eevertex_deployment"]) for d in deployments] == [sorted([new, old]), [new], [old]]
    ids = {name: d["deployed_model_id"] for name, d in deployments[0]["eevertex_deployment"].items()}
    assert [d["eevertex_traffic_split"]["traffic"]["split"] for d in deployments] == [
        {ids[new]: 10, ids[old]: 90},
        {ids[new]: 100},
        {ids[old]: 100},
    ]


def test_canary_without_previous_is_an_error(torch_build):
    import pytest

    from config.rollout import ConfigError, parse_config

    config, _ = torch_build
    data = config.model_dump(mode="json", exclude={"path"})
    data["targets"][0]["traffic_percent"] = 10
    with pytest.raises(ConfigError, match="targets.0.traffic_percent: 10 leaves 90% for the previous artifact"):
        parse_config(data, config.path)


def _adopting(torch_build, tmp_path, **adopt):
    from config.rollout import parse_config

    config, manifest = torch_build
    data = config.model_dump(mode="json", exclude={"path"})
    data["targets"][0]["adopt"] = {"artifact_sha256": manifest.sha256, **adopt}
    return parse_config(data, config.path)


def test_adopt_imports_what_gcloud_created(torch_build, tmp_path):
    _, manifest = torch_build
    version = "projects/acme-geo-dev/locations/us-central1/models/1234567890123456789@1"
    config = _adopting(torch_build, tmp_path, model_version=version, deployed_model_id="8877665544332211")
    out = synth(config, manifest, tmp_path / "out", tmp_path / "state")
    model_stack = stack_json(out, "dev-model")
    model = only(model_stack, "eevertex_model")
    address = f"eevertex_model.{next(iter(model_stack['resource']['eevertex_model']))}"
    assert model_stack["import"] == [{"id": version, "to": address}]
    assert model["model_id"] == "1234567890123456789"
    config = stack_json(out, "dev-deployment")
    deployment = only(config, "eevertex_deployment")
    endpoint = f"projects/acme-geo-dev/locations/us-central1/endpoints/{deployment['endpoint_id']}"
    assert deployment["deployed_model_id"] == "8877665544332211"
    assert deployment["model"] == version
    assert sorted(config["import"], key=lambda i: i["to"]) == [
        {
            "id": f"{endpoint}/deployedModels/8877665544332211",
            "to": f"eevertex_deployment.{next(iter(config['resource']['eevertex_deployment']))}",
        },
        {"id": endpoint, "to": "eevertex_traffic_split.traffic"},
    ]
    assert "import" not in stack_json(out, "prod-model")


def test_adopt_an_endpoint_gcloud_made_and_keep_display_names(torch_build, tmp_path):
    """`gcloud ai endpoints create` gives 19 digits: with adopt.endpoint the endpoint stack imports
    it; the adopted deployment keeps its display name (unset: Vertex AI cannot rename it), the
    model's and endpoint's come from the config and change in place."""
    from config.rollout import parse_config

    config, manifest = torch_build
    data = config.model_dump(mode="json", exclude={"path"})
    version = "projects/acme-geo-dev/locations/us-central1/models/1234567890123456789@1"
    data["model"]["display_name"] = "Land cover (Sentinel-2)"
    data["targets"][0].update(
        endpoint_id="4506198451624263680",
        endpoint_display_name="landcover-gcloud",
        adopt={
            "endpoint": True,
            "model_version": version,
            "artifact_sha256": manifest.sha256,
            "deployed_model_id": "8877665544332211",
        },
    )
    out = synth(parse_config(data, config.path), manifest, tmp_path / "out", tmp_path / "state")
    endpoint_stack = stack_json(out, "dev-endpoint")
    endpoint = endpoint_stack["resource"]["google_vertex_ai_endpoint"]["endpoint"]
    name = "projects/acme-geo-dev/locations/us-central1/endpoints/4506198451624263680"
    assert endpoint["name"] == "4506198451624263680" and endpoint["display_name"] == "landcover-gcloud"
    assert endpoint_stack["import"] == [{"id": name, "to": "google_vertex_ai_endpoint.endpoint"}]
    assert only(stack_json(out, "dev-model"), "eevertex_model")["display_name"] == "Land cover (Sentinel-2)"
    deployment = only(stack_json(out, "dev-deployment"), "eevertex_deployment")
    assert "display_name" not in deployment and deployment["endpoint_id"] == "4506198451624263680"
    assert "import" not in stack_json(out, "prod-endpoint")
    assert only(stack_json(out, "prod-deployment"), "eevertex_deployment")["display_name"].startswith(
        "landcover-torch-a"
    )


def test_an_unlisted_region_reaches_the_provider_block(torch_build, tmp_path):
    from config.rollout import parse_config

    config, manifest = torch_build
    data = config.model_dump(mode="json", exclude={"path"})
    data["targets"][0].update(region="europe-west15", allow_unlisted_region=True, kms_key=None)
    data["targets"][0].pop("kms_key")
    out = synth(parse_config(data, config.path), manifest, tmp_path / "out", tmp_path / "state")
    assert stack_json(out, "dev-model")["provider"]["eevertex"] == [{"allow_unlisted_regions": True}]
    assert "allow_unlisted_regions" not in json.dumps(stack_json(out, "prod-model")["provider"])


def test_adopt_refuses_a_version_elsewhere(torch_build, tmp_path):
    import pytest

    from config.rollout import ConfigError

    with pytest.raises(
        ConfigError, match=r"targets.0.adopt: model_version is in acme-geo-prod/us-central1 but the target"
    ):
        _adopting(torch_build, tmp_path, model_version="projects/acme-geo-prod/locations/us-central1/models/m@1")
    with pytest.raises(ConfigError, match=r"targets.0.adopt.model_version: 'models/m'; allowed: 'projects/"):
        _adopting(torch_build, tmp_path, model_version="models/m")


def test_constructs_render_hcl_attributes():
    """`cdktf synth --hcl` renders what `_synthesize_hcl_attributes` returns: every set
    attribute with its Terraform type, nothing for unset ones."""
    from cdktn import App, TerraformStack

    from stacks.vertex import TrafficSplit

    stack = TerraformStack(App(), "s")
    split = TrafficSplit(stack, "traffic", project="p", region="r", endpoint_id="1", split={"12": 100})
    assert split._synthesize_hcl_attributes()["split"] == {
        "value": {"12": 100},
        "isBlock": False,
        "type": "map",
        "storageClassType": "numberMap",
    }
    assert set(split._synthesize_hcl_attributes()) == {"project", "region", "endpoint_id", "split"}


def _with_target(torch_build, tmp_path, index: int = 0, **settings):
    from config.rollout import parse_config

    config, manifest = torch_build
    data = config.model_dump(mode="json", exclude={"path"})
    data["targets"][index].update(settings)
    tmp_path.mkdir(parents=True, exist_ok=True)
    return synth(parse_config(data, config.path), manifest, tmp_path / "out", tmp_path / "state")


def test_deploy_options_reach_the_deployment(torch_build, torch_synth, tmp_path):
    out = _with_target(
        torch_build,
        tmp_path,
        min_replicas=2,
        max_replicas=4,
        required_replicas=1,
        autoscaling={"cpu_utilization": 75, "requests_per_minute": 600},
        spot=True,
        container_logging=False,
        access_logging=True,
    )
    deployment = only(stack_json(out, "dev-deployment"), "eevertex_deployment")
    assert {
        k: deployment.get(k)
        for k in (
            "min_replica_count",
            "max_replica_count",
            "required_replica_count",
            "spot",
            "autoscaling_cpu_utilization_target",
            "autoscaling_accelerator_duty_cycle_target",
            "autoscaling_request_count_per_minute_target",
            "disable_container_logging",
            "enable_access_logging",
        )
    } == {
        "min_replica_count": 2,
        "max_replica_count": 4,
        "required_replica_count": 1,
        "spot": True,
        "autoscaling_cpu_utilization_target": 75,
        "autoscaling_accelerator_duty_cycle_target": None,
        "autoscaling_request_count_per_minute_target": 600,
        "disable_container_logging": True,
        "enable_access_logging": True,
    }


def test_spot_and_access_logging_make_a_new_deployment_the_rest_change_in_place(torch_build, torch_synth, tmp_path):
    """Vertex AI cannot change spot or access logging on a deployed model: another deployed
    model ID (a replacement, created before the old one goes); replicas, autoscaling and
    container logging keep the ID (mutateDeployedModel). Unset spot is left out, so the IDs of
    existing deployments stay."""
    before = only(stack_json(torch_synth, "dev-deployment"), "eevertex_deployment")
    assert "spot" not in before and "required_replica_count" not in before
    in_place = _with_target(
        torch_build,
        tmp_path / "in_place",
        required_replicas=1,
        container_logging=False,
        autoscaling={"cpu_utilization": 80, "requests_per_minute": 100},
    )
    spot = _with_target(torch_build, tmp_path / "spot", spot=True)
    logged = _with_target(torch_build, tmp_path / "logged", access_logging=True)
    ids = [
        only(stack_json(out, "dev-deployment"), "eevertex_deployment")["deployed_model_id"]
        for out in (in_place, spot, logged)
    ]
    assert ids[0] == before["deployed_model_id"]
    assert len({before["deployed_model_id"], *ids}) == 3 and ids[1] != ids[2]


def test_duty_cycle_target_with_accelerators(torch_build, tmp_path, monkeypatch):
    monkeypatch.setenv("EEV_TODAY", "2026-12-01")
    gpu = dict(
        machine_type="n1-standard-8",
        accelerator_type="NVIDIA_TESLA_T4",
        accelerator_count=1,
        serving_image="europe-docker.pkg.dev/vertex-ai/prediction/pytorch-gpu.2-4:latest",
    )
    default = only(
        stack_json(_with_target(torch_build, tmp_path / "default", 1, **gpu), "prod-deployment"), "eevertex_deployment"
    )
    assert default["autoscaling_accelerator_duty_cycle_target"] == 60
    set_ = only(
        stack_json(
            _with_target(torch_build, tmp_path / "set", 1, autoscaling={"accelerator_duty_cycle": 85}, **gpu),
            "prod-deployment",
        ),
        "eevertex_deployment",
    )
    assert (set_["autoscaling_accelerator_duty_cycle_target"], set_["autoscaling_cpu_utilization_target"]) == (85, 60)
    assert set_["deployed_model_id"] == default["deployed_model_id"]  # changed in place


def test_target_env_overrides_the_models_on_its_versions(torch_build, torch_synth, tmp_path):
    out = _with_target(torch_build, tmp_path, env={"EEV_TORCH_THREADS": "2", "EEV_EXTRA": "1"})
    model = only(stack_json(out, "dev-model"), "eevertex_model")
    assert model["container_env"] == {"EEV_EXTRA": "1", "EEV_TORCH_THREADS": "2"}
    # Another container is another model version (alias), deployed anew; prod keeps the model's env.
    before = only(stack_json(torch_synth, "dev-model"), "eevertex_model")
    assert before["container_env"] == {"EEV_TORCH_THREADS": "4"}
    assert model["version_alias"] != before["version_alias"]
    assert only(stack_json(out, "prod-model"), "eevertex_model") == only(
        stack_json(torch_synth, "prod-model"), "eevertex_model"
    )


def test_target_env_is_on_the_previous_version_too(torch_build, tmp_path):
    """While a canary runs, the previous version keeps the target's env, so the version that
    serves stays the one deployed."""
    from config.rollout import parse_config

    config, manifest = torch_build
    data = config.model_dump(mode="json", exclude={"path"})
    data["model"]["previous"] = {"sha256": "ab" * 32}
    data["targets"][0].update(traffic_percent=10, env={"EEV_EXTRA": "1"})
    out = synth(parse_config(data, config.path), manifest, tmp_path / "out", tmp_path / "state")
    envs = [m["container_env"] for m in of_type(stack_json(out, "dev-model"), "eevertex_model")]
    assert envs == [{"EEV_EXTRA": "1", "EEV_TORCH_THREADS": "4"}] * 2


def test_request_logging_creates_the_dataset_not_the_table(torch_build, tmp_path):
    out = _with_target(torch_build, tmp_path, request_logging={"sampling_rate": 0.25})
    stack = stack_json(out, "dev-endpoint")
    dataset = resource(stack, "google_bigquery_dataset", "request_logs")
    assert {k: dataset[k] for k in ("dataset_id", "project", "location", "deletion_policy")} == {
        "dataset_id": "landcover_torch_requests",
        "project": "acme-geo-dev",
        "location": "us-central1",
        "deletion_policy": "ABANDON",
    }
    assert "default_encryption_configuration" not in dataset
    assert "google_bigquery_table" not in stack["resource"]
    endpoint = resource(stack, "google_vertex_ai_endpoint", "endpoint")
    assert endpoint["predict_request_response_logging_config"] == {
        "enabled": True,
        "sampling_rate": 0.25,
        "bigquery_destination": {"output_uri": "bq://acme-geo-dev.landcover_torch_requests.request_response_logging"},
    }
    assert endpoint["depends_on"] == ["google_bigquery_dataset.request_logs"]
    assert "predict_request_response_logging_config" not in resource(
        stack_json(out, "prod-endpoint"), "google_vertex_ai_endpoint", "endpoint"
    )


def test_request_log_dataset_takes_the_targets_cmek(torch_build, tmp_path):
    from config.rollout import parse_config

    config, manifest = torch_build
    data = config.model_dump(mode="json", exclude={"path"})
    data["targets"][1]["request_logging"] = {"sampling_rate": 1, "dataset": "ee_logs", "table": "prod_requests"}
    out = synth(parse_config(data, config.path), manifest, tmp_path / "out", tmp_path / "state")
    stack = stack_json(out, "prod-endpoint")
    dataset = resource(stack, "google_bigquery_dataset", "request_logs")
    assert dataset["default_encryption_configuration"] == {
        "kms_key_name": "projects/acme-geo-prod/locations/europe-west4/keyRings/ml/cryptoKeys/models"
    }
    assert resource(stack, "google_vertex_ai_endpoint", "endpoint")["predict_request_response_logging_config"][
        "bigquery_destination"
    ] == {"output_uri": "bq://acme-geo-prod.ee_logs.prod_requests"}


def test_monitoring_is_off_by_default(torch_synth):
    for target in ("dev", "prod"):
        assert "google_monitoring_alert_policy" not in stack_json(torch_synth, f"{target}-endpoint")["resource"]


def test_monitoring_one_alert_policy_with_error_ratio_and_p99(torch_build, tmp_path):
    channel = "projects/acme-geo-dev/notificationChannels/123"
    out = _with_target(
        torch_build,
        tmp_path,
        monitoring={"enabled": True, "error_rate": 0.02, "p99_latency_ms": 800, "notification_channels": [channel]},
    )
    stack = stack_json(out, "dev-endpoint")
    policy = only(stack, "google_monitoring_alert_policy")
    endpoint_id = resource(stack, "google_vertex_ai_endpoint", "endpoint")["name"]
    assert (policy["display_name"], policy["combiner"], policy["notification_channels"], policy["enabled"]) == (
        "landcover-torch-dev endpoint errors and latency",
        "OR",
        [channel],
        True,
    )
    errors, latency = (c["condition_threshold"] for c in policy["conditions"])
    where = f'resource.type="aiplatform.googleapis.com/Endpoint" AND resource.label.endpoint_id="{endpoint_id}"'
    assert errors["filter"] == (
        f'metric.type="aiplatform.googleapis.com/prediction/online/response_count" AND '
        f'{where} AND metric.label.response_code=starts_with("5")'
    )
    assert errors["denominator_filter"] == (
        f'metric.type="aiplatform.googleapis.com/prediction/online/response_count" AND {where}'
    )
    assert (
        errors["aggregations"]
        == errors["denominator_aggregations"]
        == [
            {
                "alignment_period": "300s",
                "per_series_aligner": "ALIGN_RATE",
                "cross_series_reducer": "REDUCE_SUM",
                "group_by_fields": ["resource.label.endpoint_id"],
            }
        ]
    )
    assert (errors["comparison"], errors["threshold_value"], errors["duration"]) == ("COMPARISON_GT", 0.02, "300s")
    assert latency["filter"] == (
        f'metric.type="aiplatform.googleapis.com/prediction/online/prediction_latencies" '
        f'AND {where} AND metric.label.latency_type="total"'
    )
    assert latency["aggregations"] == [
        {
            "alignment_period": "300s",
            "per_series_aligner": "ALIGN_PERCENTILE_99",
            "cross_series_reducer": "REDUCE_MAX",
            "group_by_fields": ["metric.label.deployed_model_id"],
        }
    ]
    assert (latency["threshold_value"], "denominator_filter" in latency) == (800, False)
    assert "condition_monitoring_query_language" not in json.dumps(policy)
    # `review` lists them per target.
    from plan.review import alert_policies

    assert alert_policies(out, ["dev-endpoint", "dev-model", "prod-endpoint"]) == [
        f"dev: alert policy 'landcover-torch-dev endpoint errors and latency': 5xx responses above 2.00%; "
        f"p99 latency above 800 ms; notifies {channel}",
        "prod: monitoring off (no alert policy; [targets.monitoring] enabled = true adds one)",
    ]


def test_resource_pool_is_created_and_the_deployment_shares_it(torch_build, tmp_path, monkeypatch):
    monkeypatch.setenv("EEV_TODAY", "2026-12-01")
    out = _with_target(
        torch_build,
        tmp_path,
        resource_pool={"id": "ee-shared"},
        serving_image="us-docker.pkg.dev/vertex-ai/prediction/pytorch-cpu.2-4:latest",
    )
    pool = resource(stack_json(out, "dev-endpoint"), "google_vertex_ai_deployment_resource_pool", "resource_pool")
    assert attributes(pool) == {
        "name": "ee-shared",
        "project": "acme-geo-dev",
        "region": "us-central1",
        "dedicated_resources": {
            "machine_spec": {"machine_type": "n1-standard-4"},
            "min_replica_count": 1,
            "max_replica_count": 2,
        },
    }
    deployment = attributes(only(stack_json(out, "dev-deployment"), "eevertex_deployment"))
    assert (
        deployment["shared_resources"]
        == "projects/acme-geo-dev/locations/us-central1/deploymentResourcePools/ee-shared"
    )
    assert not {"machine_type", "min_replica_count", "max_replica_count", "accelerator_type"} & set(deployment)


def test_an_existing_resource_pool_is_only_named(torch_build, tmp_path, monkeypatch):
    monkeypatch.setenv("EEV_TODAY", "2026-12-01")
    out = _with_target(
        torch_build,
        tmp_path,
        resource_pool={"id": "ee-shared", "create": False},
        serving_image="us-docker.pkg.dev/vertex-ai/prediction/pytorch-cpu.2-4:latest",
    )
    assert "google_vertex_ai_deployment_resource_pool" not in stack_json(out, "dev-endpoint")["resource"]
    assert only(stack_json(out, "dev-deployment"), "eevertex_deployment")["shared_resources"].endswith("/ee-shared")
