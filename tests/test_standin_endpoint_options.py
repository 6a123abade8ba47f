"""The endpoint stack's request-response logging, deployment resource pool and alert policy on
the stand-in google provider (rehearsal/google_standin) against the Vertex AI, BigQuery and
Cloud Monitoring emulators, through real Terraform: apply, empty plan, in-place updates, drift,
destroy. The resources are written as the endpoint stack synthesizes them (tests/test_stacks_*.py).
"""

from __future__ import annotations

import json

import pytest
import requests
from provider_support import PROJECT, REGION, Workspace

pytestmark = pytest.mark.slow

ENDPOINT_ID = "512345678"
LOCATION = f"projects/{PROJECT}/locations/{REGION}"
RESPONSES = (
    'metric.type="aiplatform.googleapis.com/prediction/online/response_count" AND '
    f'resource.type="aiplatform.googleapis.com/Endpoint" AND resource.label.endpoint_id="{ENDPOINT_ID}"'
)


@pytest.fixture(scope="module")
def emulators(tmp_path_factory):
    from rehearsal.emulators import Emulators

    with Emulators(tmp_path_factory.mktemp("emulators"), serving=False) as running:
        yield running


@pytest.fixture(scope="module")
def workspace(emulators, tmp_path_factory):
    from rehearsal.google_standin import VERSION, install_with_eevertex
    from rehearsal.prerequisites import provider_python

    if not provider_python().exists():
        pytest.skip("set $EEV_PROVIDER_PYTHON to the provider's virtualenv python (`nox -s tests` does)")
    tmp = tmp_path_factory.mktemp("standin")
    cli_config = install_with_eevertex(tmp / "mirror", tmp / "terraform.rc", str(provider_python()))
    ws = Workspace(tmp / "work", cli_config, emulators.vertex_url)
    ws.version = VERSION
    ws.env = {**emulators.environment(), "GOOGLE_PROJECT": PROJECT, "GOOGLE_REGION": REGION}
    return ws


def _write(ws: Workspace, *, rate: float, error_rate: float, logging: bool = True) -> None:
    endpoint = {
        "name": ENDPOINT_ID,
        "display_name": "landcover-dev",
        "description": "called by Earth Engine",
        "location": REGION,
        "region": REGION,
        "project": PROJECT,
        "depends_on": ["google_bigquery_dataset.request_logs"],
    }
    if logging:
        endpoint["predict_request_response_logging_config"] = {
            "enabled": True,
            "sampling_rate": rate,
            "bigquery_destination": {"output_uri": f"bq://{PROJECT}.landcover_requests.request_response_logging"},
        }
    window = {
        "alignment_period": "300s",
        "per_series_aligner": "ALIGN_RATE",
        "cross_series_reducer": "REDUCE_SUM",
        "group_by_fields": ["resource.label.endpoint_id"],
    }
    config = {
        "terraform": {"required_providers": {"google": {"source": "hashicorp/google", "version": ws.version}}},
        "provider": {"google": [{"project": PROJECT, "region": REGION}]},
        "resource": {
            "google_bigquery_dataset": {
                "request_logs": {
                    "dataset_id": "landcover_requests",
                    "project": PROJECT,
                    "location": REGION,
                    "deletion_policy": "ABANDON",
                    "labels": {"env": "dev"},
                }
            },
            "google_vertex_ai_endpoint": {"endpoint": endpoint},
            "google_vertex_ai_deployment_resource_pool": {
                "resource_pool": {
                    "name": "ee-shared",
                    "project": PROJECT,
                    "region": REGION,
                    "dedicated_resources": {
                        "machine_spec": {"machine_type": "n1-standard-4"},
                        "min_replica_count": 1,
                        "max_replica_count": 2,
                    },
                }
            },
            "google_monitoring_alert_policy": {
                "alert_policy": {
                    "project": PROJECT,
                    "display_name": "landcover-dev endpoint errors and latency",
                    "combiner": "OR",
                    "enabled": True,
                    "user_labels": {"env": "dev"},
                    "conditions": [
                        {
                            "display_name": "5xx",
                            "condition_threshold": {
                                "filter": f'{RESPONSES} AND metric.label.response_code=starts_with("5")',
                                "denominator_filter": RESPONSES,
                                "aggregations": [window],
                                "denominator_aggregations": [window],
                                "comparison": "COMPARISON_GT",
                                "threshold_value": error_rate,
                                "duration": "300s",
                            },
                        },
                        {
                            "display_name": "p99",
                            "condition_threshold": {
                                "filter": (
                                    'metric.type="aiplatform.googleapis.com/prediction/online/prediction_latencies" '
                                    'AND resource.type="aiplatform.googleapis.com/Endpoint" AND '
                                    f'resource.label.endpoint_id="{ENDPOINT_ID}" AND metric.label.latency_type="total"'
                                ),
                                "aggregations": [
                                    {
                                        "alignment_period": "300s",
                                        "per_series_aligner": "ALIGN_PERCENTILE_99",
                                        "cross_series_reducer": "REDUCE_MAX",
                                        "group_by_fields": ["metric.label.deployed_model_id"],
                                    }
                                ],
                                "comparison": "COMPARISON_GT",
                                "threshold_value": 800,
                                "duration": "300s",
                            },
                        },
                    ],
                }
            },
        },
    }
    (ws.path / "main.tf.json").write_text(json.dumps(config, indent=1))


def _changes(ws: Workspace) -> dict:
    ws.tf("plan", "-input=false", "-no-color", "-lock=false", "-out=plan.tfplan", env=ws.env)
    raw = json.loads(ws.tf("show", "-json", "plan.tfplan", env=ws.env).stdout)
    return {
        rc["address"]: rc["change"]["actions"]
        for rc in raw.get("resource_changes", [])
        if rc["change"]["actions"] != ["no-op"]
    }


def _apply(ws: Workspace) -> None:
    ws.tf("apply", "-input=false", "-no-color", "-auto-approve", env=ws.env)


def _policies(emulators) -> list[dict]:
    return list(emulators.state().get("alertPolicies", {}).values())


def test_apply_then_plan_is_empty(workspace, emulators):
    _write(workspace, rate=0.25, error_rate=0.05)
    workspace.tf("init", "-input=false", "-no-color", env=workspace.env)
    assert _changes(workspace) == {
        a: ["create"]
        for a in (
            "google_bigquery_dataset.request_logs",
            "google_vertex_ai_endpoint.endpoint",
            "google_vertex_ai_deployment_resource_pool.resource_pool",
            "google_monitoring_alert_policy.alert_policy",
        )
    }
    _apply(workspace)
    assert _changes(workspace) == {}
    state = emulators.state()
    endpoint = state["endpoints"][f"{LOCATION}/endpoints/{ENDPOINT_ID}"]
    assert endpoint["predictRequestResponseLoggingConfig"]["samplingRate"] == 0.25
    # Vertex AI made the table in the dataset the stack made.
    dataset = state["bigquery"][f"{PROJECT}:landcover_requests"]
    assert list(dataset["_tables"]) == ["request_response_logging"]
    assert state["pools"][f"{LOCATION}/deploymentResourcePools/ee-shared"]["dedicatedResources"]["maxReplicaCount"] == 2
    (policy,) = _policies(emulators)
    assert sorted(c["displayName"] for c in policy["conditions"]) == ["5xx", "p99"]


def test_sampling_rate_and_threshold_change_in_place(workspace, emulators):
    _write(workspace, rate=0.5, error_rate=0.1)
    assert _changes(workspace) == {
        "google_vertex_ai_endpoint.endpoint": ["update"],
        "google_monitoring_alert_policy.alert_policy": ["update"],
    }
    _apply(workspace)
    endpoint = emulators.state()["endpoints"][f"{LOCATION}/endpoints/{ENDPOINT_ID}"]
    assert endpoint["predictRequestResponseLoggingConfig"]["samplingRate"] == 0.5
    (policy,) = _policies(emulators)
    errors = next(c for c in policy["conditions"] if c["displayName"] == "5xx")
    assert errors["conditionThreshold"]["thresholdValue"] == 0.1
    assert _changes(workspace) == {}


def test_logging_turned_off_in_place(workspace, emulators):
    _write(workspace, rate=0.5, error_rate=0.1, logging=False)
    assert _changes(workspace) == {"google_vertex_ai_endpoint.endpoint": ["update"]}
    _apply(workspace)
    endpoint = emulators.state()["endpoints"][f"{LOCATION}/endpoints/{ENDPOINT_ID}"]
    assert endpoint["predictRequestResponseLoggingConfig"] == {"enabled": False}
    assert _changes(workspace) == {}


def test_a_policy_deleted_by_hand_is_planned_again(workspace, emulators):
    (policy,) = _policies(emulators)
    assert requests.delete(f"{emulators.vertex_url}/monitoring/v3/{policy['name']}", timeout=30).status_code == 200
    assert _changes(workspace) == {"google_monitoring_alert_policy.alert_policy": ["create"]}
    _apply(workspace)
    assert len(_policies(emulators)) == 1


def test_destroy_keeps_the_logs(workspace, emulators):
    workspace.tf("apply", "-destroy", "-input=false", "-no-color", "-auto-approve", env=workspace.env)
    state = emulators.state()
    assert state["endpoints"] == {} and state.get("pools") == {} and _policies(emulators) == []
    assert list(state["bigquery"][f"{PROJECT}:landcover_requests"]["_tables"]) == ["request_response_logging"]


def test_the_synthesized_endpoint_stack_applies_and_plans_empty(
    torch_build, emulators, workspace, tmp_path, monkeypatch
):
    """What `synth` writes for request_logging, monitoring and resource_pool, applied as it is."""
    from conftest import synth

    from config.rollout import parse_config

    monkeypatch.setenv("EEV_TODAY", "2026-12-01")
    config, manifest = torch_build
    data = config.model_dump(mode="json", exclude={"path"})
    data["targets"][0].update(
        predict_members=[],
        serving_image="us-docker.pkg.dev/vertex-ai/prediction/pytorch-cpu.2-4:latest",
        request_logging={"sampling_rate": 0.1},
        resource_pool={"id": "ee-dev-pool"},
        monitoring={"enabled": True, "notification_channels": ["projects/acme-geo-dev/notificationChannels/7"]},
    )
    out = synth(parse_config(data, config.path), manifest, tmp_path / "out", tmp_path / "state")
    stack = Workspace(out / "stacks" / "dev-endpoint", workspace.cli_config, emulators.vertex_url)
    stack.env = workspace.env
    for step in (("init", "-input=false", "-no-color"), ("apply", "-input=false", "-no-color", "-auto-approve")):
        stack.tf(*step, env=workspace.env)
    assert _changes(stack) == {}
    state = emulators.state()
    assert "acme-geo-dev:landcover_torch_requests" in state["bigquery"]
    assert "projects/acme-geo-dev/locations/us-central1/deploymentResourcePools/ee-dev-pool" in state["pools"]
    (policy,) = [p for p in _policies(emulators) if p["name"].startswith("projects/acme-geo-dev/")]
    assert policy["notificationChannels"] == ["projects/acme-geo-dev/notificationChannels/7"]
