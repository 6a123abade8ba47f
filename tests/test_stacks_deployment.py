"""The synthesized Terraform JSON, one behaviour per test: the deployment and traffic split, ids,
the endpoint's IAM, determinism, the state backend, the errors of main, canary/promotion/rollback,
adoption of what gcloud created.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from conftest import ROOT, stack_json, synth
from stacks_support import attributes, of_type, only, resource

from stacks import naming


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
