"""The synthesized Terraform JSON, one behaviour per test: HCL rendering, deploy options, the target's
env, request-response logging, monitoring, shared resource pools.
"""

from __future__ import annotations

import json

from conftest import stack_json, synth
from stacks_support import attributes, of_type, only, resource


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
