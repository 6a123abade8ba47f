"""The synthesized Terraform JSON, one behaviour per test: the stacks and their order, the bucket and
the artifact objects, the model and its versions, the registry, the provider block.
"""

from __future__ import annotations

import json
import re

from conftest import stack_json, synth
from stacks_support import attributes, only, resource

from stacks import naming


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
