"""eevertex_deployment's deploy options against the Vertex AI emulator, through real Terraform: what
changes in place, what is planned back after drift, what deploys anew, what is refused at plan.
"""

from __future__ import annotations

import pytest
from deployment_support import deployment, get, wait_operation
from provider_support import (
    ARTIFACT,
    PROJECT,
    REGION,
    Workspace,
    changes,
    emulators,  # noqa: F401
    model_config,
    planned_after,
    put_artifact,
)

from serving.local import http_json

pytestmark = pytest.mark.slow


OPTIONS_ENDPOINT_ID = "512345678"
OPTIONS_ENDPOINT = f"projects/{PROJECT}/locations/{REGION}/endpoints/{OPTIONS_ENDPOINT_ID}"
CPU = "aiplatform.googleapis.com/prediction/online/cpu/utilization"
REQUESTS = "aiplatform.googleapis.com/prediction/online/request_count"


def with_options(deployed_id: str = "301", **options) -> dict:
    body = deployment("${eevertex_model.m.id}", deployed_id, endpoint_id=OPTIONS_ENDPOINT_ID, **options)
    return {
        "eevertex_model": {"m": {**model_config(model_id="opts"), "lifecycle": {"create_before_destroy": True}}},
        "eevertex_deployment": {"d": body},
    }


def deployed_on_options(emulators) -> dict:
    (deployed,) = get(emulators, OPTIONS_ENDPOINT)["deployedModels"]
    return deployed


@pytest.fixture(scope="module")
def options(emulators, provider_cli_config, tmp_path_factory):
    put_artifact(emulators, ARTIFACT)
    status, body = http_json(
        f"{emulators.vertex_url}/v1/projects/{PROJECT}/locations/{REGION}/endpoints?endpointId={OPTIONS_ENDPOINT_ID}",
        {"displayName": "options"},
    )
    assert status == 200, body
    wait_operation(emulators, body)
    ws = Workspace(tmp_path_factory.mktemp("options"), provider_cli_config, emulators.vertex_url)
    ws.write(with_options())
    ws.init()
    ws.apply()
    return ws


def test_options_change_in_place(options, emulators):
    """Required replicas, autoscaling targets and container logging: mutateDeployedModel, same
    deployed model; then an empty plan."""
    options.write(
        with_options(
            min_replica_count=2,
            max_replica_count=3,
            required_replica_count=1,
            autoscaling_cpu_utilization_target=70,
            autoscaling_request_count_per_minute_target=600,
            disable_container_logging=True,
        )
    )
    assert changes(options.plan()) == {"eevertex_deployment.d": ["update"]}
    before = len(emulators.journal())
    options.apply()
    assert [c["method"] for c in emulators.journal()[before:]] == ["mutateDeployedModel"]
    deployed = deployed_on_options(emulators)
    assert deployed["id"] == "301" and deployed["disableContainerLogging"] is True
    assert deployed["dedicatedResources"]["requiredReplicaCount"] == 1
    assert deployed["dedicatedResources"]["autoscalingMetricSpecs"] == [
        {"metricName": CPU, "target": 70},
        {"metricName": REQUESTS, "target": 600},
    ]
    assert changes(options.plan()) == {}


def test_options_drift_is_planned_back(options, emulators):
    status, op = http_json(
        f"{emulators.vertex_url}/v1/{OPTIONS_ENDPOINT}:mutateDeployedModel",
        {
            "deployedModel": {
                "id": "301",
                "disableContainerLogging": False,
                "dedicatedResources": {
                    "requiredReplicaCount": 2,
                    "autoscalingMetricSpecs": [{"metricName": CPU, "target": 50}],
                },
            },
            "updateMask": "dedicatedResources.requiredReplicaCount,dedicatedResources.autoscalingMetricSpecs,"
            "disableContainerLogging",
        },
    )
    assert status == 200, op
    wait_operation(emulators, op)
    plan = options.plan()
    assert changes(plan) == {"eevertex_deployment.d": ["update"]}
    after = planned_after(plan, "eevertex_deployment.d")
    assert (
        after["required_replica_count"],
        after["autoscaling_cpu_utilization_target"],
        after["autoscaling_request_count_per_minute_target"],
        after["disable_container_logging"],
    ) == (1, 70, 600, True)
    options.apply()
    assert deployed_on_options(emulators)["dedicatedResources"]["requiredReplicaCount"] == 1
    assert changes(options.plan()) == {}


def test_a_removed_request_target_and_required_count_are_cleared(options, emulators):
    options.write(
        with_options(
            min_replica_count=2,
            max_replica_count=3,
            autoscaling_cpu_utilization_target=70,
            disable_container_logging=True,
        )
    )
    assert changes(options.plan()) == {"eevertex_deployment.d": ["update"]}
    options.apply()
    resources = deployed_on_options(emulators)["dedicatedResources"]
    assert resources["autoscalingMetricSpecs"] == [{"metricName": CPU, "target": 70}]
    assert "requiredReplicaCount" not in resources
    assert changes(options.plan()) == {}


@pytest.mark.parametrize("attribute", ["spot", "enable_access_logging"])
def test_spot_and_access_logging_cannot_change_under_the_same_id(options, attribute):
    options.write(
        with_options(
            min_replica_count=2,
            max_replica_count=3,
            autoscaling_cpu_utilization_target=70,
            disable_container_logging=True,
            **{attribute: True},
        )
    )
    error = " ".join(options.plan_error().split())
    assert f"deployed model 301 on {OPTIONS_ENDPOINT} would be replaced under the same ID ({attribute}" in error


def test_spot_and_access_logging_deploy_anew(options, emulators):
    """Vertex AI cannot mutate spot or access logging: a new deployment (another ID), created
    before the old one is undeployed; the new one takes the traffic."""
    options.write(
        with_options(
            "302",
            min_replica_count=2,
            max_replica_count=3,
            autoscaling_cpu_utilization_target=70,
            disable_container_logging=True,
            spot=True,
            enable_access_logging=True,
        )
    )
    plan = options.plan()
    assert changes(plan) == {"eevertex_deployment.d": ["create", "delete"]}
    options.apply()
    deployed = deployed_on_options(emulators)
    assert (deployed["id"], deployed["dedicatedResources"]["spot"], deployed["enableAccessLogging"]) == (
        "302",
        True,
        True,
    )
    assert get(emulators, OPTIONS_ENDPOINT)["trafficSplit"] == {"302": 100}
    assert changes(options.plan()) == {}
    state = options.state("eevertex_deployment.d")
    assert (state["spot"], state["enable_access_logging"]) == (True, True)


@pytest.mark.parametrize(
    "settings, message",
    [
        (
            {"required_replica_count": 3},
            "required_replica_count: 3 is more than the minimum replica count, 2; allowed: 1 to 2",
        ),
        (
            {"autoscaling_cpu_utilization_target": 0},
            "autoscaling_cpu_utilization_target: 0; allowed: a whole number from 1 to 100",
        ),
        (
            {"autoscaling_accelerator_duty_cycle_target": 70},
            "autoscaling_accelerator_duty_cycle_target: 70 without accelerators",
        ),
        (
            {"autoscaling_request_count_per_minute_target": 0},
            "autoscaling_request_count_per_minute_target: 0; allowed: a "
            "whole number of requests per minute per replica",
        ),
    ],
)
def test_options_refused_at_plan_with_the_configs_message(options, settings, message):
    options.write(with_options("302", min_replica_count=2, max_replica_count=3, **settings))
    assert message in " ".join(options.plan_error().split())
