"""eevertex_deployment in a shared deployment resource pool (`shared_resources`) against the
Vertex AI emulator, through real Terraform: deploy, empty plan, plan-time refusals (the oneof
with machines of its own, a pool in another region), destroy.
"""

from __future__ import annotations

import time

import pytest
from provider_support import (
    ARTIFACT,
    PROJECT,
    REGION,
    Workspace,
    changes,
    emulators,  # noqa: F401
    model_config,
    put_artifact,
)

from serving.local import http_json

pytestmark = pytest.mark.slow

ENDPOINT_ID = "612345678"
ENDPOINT = f"projects/{PROJECT}/locations/{REGION}/endpoints/{ENDPOINT_ID}"
POOL = f"projects/{PROJECT}/locations/{REGION}/deploymentResourcePools/ee-shared"


def _done(emulators, path: str, body: dict) -> None:
    status, op = http_json(f"{emulators.vertex_url}/v1/{path}", body)
    assert status == 200, op
    while not op.get("done"):
        time.sleep(0.1)
        op = http_json(f"{emulators.vertex_url}/v1/{op['name']}")[1]
    assert "error" not in op, op


@pytest.fixture(scope="module")
def workspace(emulators, provider_cli_config, tmp_path_factory):
    put_artifact(emulators, ARTIFACT)
    _done(
        emulators,
        f"projects/{PROJECT}/locations/{REGION}/endpoints?endpointId={ENDPOINT_ID}",
        {"displayName": "landcover"},
    )
    _done(
        emulators,
        f"projects/{PROJECT}/locations/{REGION}/deploymentResourcePools",
        {
            "deploymentResourcePoolId": "ee-shared",
            "deploymentResourcePool": {
                "dedicatedResources": {
                    "machineSpec": {"machineType": "n1-standard-4"},
                    "minReplicaCount": 1,
                    "maxReplicaCount": 2,
                }
            },
        },
    )
    ws = Workspace(tmp_path_factory.mktemp("shared-pool"), provider_cli_config, emulators.vertex_url)
    ws.write({})
    ws.init()
    return ws


def _config(**deployment) -> dict:
    return {
        "eevertex_model": {"first": {**model_config(), "lifecycle": {"create_before_destroy": True}}},
        "eevertex_deployment": {
            "first": {
                "project": PROJECT,
                "region": REGION,
                "endpoint_id": ENDPOINT_ID,
                "model": "${eevertex_model.first.id}",
                "deployed_model_id": "201",
                "display_name": "landcover",
                "shared_resources": POOL,
                "lifecycle": {"create_before_destroy": True},
                **deployment,
            }
        },
        "eevertex_traffic_split": {
            "t": {
                "project": PROJECT,
                "region": REGION,
                "endpoint_id": ENDPOINT_ID,
                "split": {"201": 100},
                "depends_on": ["eevertex_deployment.first"],
            }
        },
    }


def test_machines_of_its_own_beside_a_pool_are_refused_at_plan(workspace):
    workspace.write(_config(machine_type="n1-standard-4", min_replica_count=1))
    error = workspace.plan_error()
    assert "machine_type: set together with shared_resources" in error and "oneof" in error
    workspace.write(_config(shared_resources=POOL.replace(REGION, "europe-west4")))
    assert "allowed: a pool in the endpoint's region 'us-central1'" in workspace.plan_error()
    workspace.write(_config(shared_resources="ee-shared"))
    assert "deploymentResourcePools/<pool ID>" in workspace.plan_error()


def test_deploy_into_the_pool_then_plan_is_empty(workspace, emulators):
    workspace.write(_config())
    workspace.apply()
    assert changes(workspace.plan()) == {}
    state = workspace.state("eevertex_deployment.first")
    assert state["shared_resources"] == POOL
    assert (state["machine_type"], state["min_replica_count"], state["autoscaling_cpu_utilization_target"]) == (
        None,
        None,
        None,
    )
    (deployed,) = http_json(f"{emulators.vertex_url}/v1/{ENDPOINT}")[1]["deployedModels"]
    assert deployed["sharedResources"].endswith("/deploymentResourcePools/ee-shared")
    assert "dedicatedResources" not in deployed


def test_destroy_undeploys_from_the_pool(workspace, emulators):
    workspace.destroy()
    status, answer = http_json(f"{emulators.vertex_url}/v1/{POOL}:queryDeployedModels")
    assert status == 200 and answer["totalDeployedModelCount"] == 0
