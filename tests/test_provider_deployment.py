"""eevertex_deployment and eevertex_traffic_split against the Vertex AI emulator, through real
Terraform: create, empty plan, in-place replica and split updates, drift (manual undeploy,
manual replica change), import, canary/promote/rollback, plan-time split errors, interrupted
create adopted, destroy (undeploy first, artifact kept).
Deploy options are in tests/test_provider_deployment_options.py.
"""

from __future__ import annotations

import pytest
from deployment_support import ENDPOINT_ID, deployment, get, wait_operation
from provider_support import (
    ARTIFACT,
    PROJECT,
    REGION,
    Workspace,
    artifact_objects,
    changes,
    emulators,  # noqa: F401
    model_config,
    planned_after,
    put_artifact,
)

from serving.local import http_json

pytestmark = pytest.mark.slow


ENDPOINT = f"projects/{PROJECT}/locations/{REGION}/endpoints/{ENDPOINT_ID}"
MODELS = f"projects/{PROJECT}/locations/{REGION}/models"
IMAGE_2 = "us-docker.pkg.dev/vertex-ai/prediction/pytorch-cpu.2-5:latest"


def split(**shares: int) -> dict:
    return {
        "project": PROJECT,
        "region": REGION,
        "endpoint_id": ENDPOINT_ID,
        "split": {k.removeprefix("d"): v for k, v in shares.items()},
    }


def config(*, models: dict, deployments: dict, traffic: dict | None) -> dict:
    resources = {"eevertex_model": models, "eevertex_deployment": deployments}
    if traffic is not None:
        # The split names deployments: it changes after they exist and before they go.
        resources["eevertex_traffic_split"] = {
            "t": {**traffic, "depends_on": [f"eevertex_deployment.{name}" for name in deployments]}
        }
    return resources


FIRST = {"first": {**model_config(), "lifecycle": {"create_before_destroy": True}}}
BOTH = {
    **FIRST,
    "next": {
        **model_config(container_image_uri=IMAGE_2, version_alias="a-0123abcd-c-7a8b"),
        "lifecycle": {"create_before_destroy": True},
    },
}


@pytest.fixture(scope="module")
def workspace(emulators, provider_cli_config, tmp_path_factory):
    put_artifact(emulators, ARTIFACT)
    status, body = http_json(
        f"{emulators.vertex_url}/v1/projects/{PROJECT}/locations/{REGION}/endpoints?endpointId={ENDPOINT_ID}",
        {"displayName": "landcover"},
    )
    assert status == 200, body
    wait_operation(emulators, body)
    ws = Workspace(tmp_path_factory.mktemp("deployment"), provider_cli_config, emulators.vertex_url)
    ws.init_done = False
    return ws


def apply_config(ws: Workspace, **kw) -> None:
    ws.write(config(**kw))
    if not ws.init_done:
        ws.init()
        ws.init_done = True


def test_create_then_plan_is_empty(workspace, emulators):
    apply_config(
        workspace,
        models=FIRST,
        deployments={"first": deployment("${eevertex_model.first.id}", "101")},
        traffic=split(d101=100),
    )
    assert changes(workspace.plan()) == {
        "eevertex_model.first": ["create"],
        "eevertex_deployment.first": ["create"],
        "eevertex_traffic_split.t": ["create"],
    }
    workspace.apply()
    assert changes(workspace.plan()) == {}
    state = workspace.state("eevertex_deployment.first")
    assert state["id"] == f"{ENDPOINT}/deployedModels/101"
    assert state["autoscaling_cpu_utilization_target"] == 60  # Vertex AI's default, shown once known
    endpoint = get(emulators, ENDPOINT)
    assert endpoint["trafficSplit"] == {"101": 100}


def test_replicas_update_in_place(workspace, emulators):
    apply_config(
        workspace,
        models=FIRST,
        deployments={
            "first": deployment(
                "${eevertex_model.first.id}", "101", max_replica_count=3, autoscaling_cpu_utilization_target=75
            )
        },
        traffic=split(d101=100),
    )
    assert changes(workspace.plan()) == {"eevertex_deployment.first": ["update"]}
    workspace.apply()
    deployed = get(emulators, ENDPOINT)["deployedModels"][0]["dedicatedResources"]
    assert deployed["maxReplicaCount"] == 3
    assert deployed["autoscalingMetricSpecs"] == [
        {"metricName": "aiplatform.googleapis.com/prediction/online/cpu/utilization", "target": 75}
    ]
    assert changes(workspace.plan()) == {}


def test_drift_manual_replica_change_plans_update(workspace, emulators):
    status, op = http_json(
        f"{emulators.vertex_url}/v1/{ENDPOINT}:mutateDeployedModel",
        {
            "deployedModel": {"id": "101", "dedicatedResources": {"minReplicaCount": 2, "maxReplicaCount": 5}},
            "updateMask": "dedicatedResources.minReplicaCount,dedicatedResources.maxReplicaCount",
        },
    )
    assert status == 200, op
    wait_operation(emulators, op)
    plan = workspace.plan()
    assert changes(plan) == {"eevertex_deployment.first": ["update"]}
    assert planned_after(plan, "eevertex_deployment.first")["max_replica_count"] == 3
    workspace.apply()
    assert get(emulators, ENDPOINT)["deployedModels"][0]["dedicatedResources"]["maxReplicaCount"] == 3


def test_drift_manual_undeploy_plans_create(workspace, emulators):
    status, op = http_json(f"{emulators.vertex_url}/v1/{ENDPOINT}:undeployModel", {"deployedModelId": "101"})
    assert status == 200, op
    wait_operation(emulators, op)
    plan = changes(workspace.plan())
    assert plan["eevertex_deployment.first"] == ["create"]
    workspace.apply()
    assert get(emulators, ENDPOINT)["trafficSplit"] == {"101": 100}
    assert changes(workspace.plan()) == {}


def test_import_then_plan_is_empty(workspace):
    workspace.forget()
    workspace.write(
        config(
            models=FIRST,
            deployments={
                "first": deployment(
                    "${eevertex_model.first.id}", "101", max_replica_count=3, autoscaling_cpu_utilization_target=75
                )
            },
            traffic=split(d101=100),
        )
    )
    main = workspace.path / "main.tf.json"
    import json

    data = json.loads(main.read_text())
    data["import"] = [
        {"to": "eevertex_model.first", "id": f"projects/{PROJECT}/locations/{REGION}/models/landcover@1"},
        {"to": "eevertex_deployment.first", "id": f"{ENDPOINT}/deployedModels/101"},
        {"to": "eevertex_traffic_split.t", "id": ENDPOINT},
    ]
    main.write_text(json.dumps(data))
    assert changes(workspace.plan()) == {}
    workspace.apply()
    data.pop("import")
    main.write_text(json.dumps(data))
    assert changes(workspace.plan()) == {}


def test_split_not_summing_to_100_is_a_plan_error(workspace):
    workspace.write(
        config(
            models=BOTH,
            deployments={
                "first": deployment(
                    "${eevertex_model.first.id}", "101", max_replica_count=3, autoscaling_cpu_utilization_target=75
                ),
                "next": deployment("${eevertex_model.next.id}", "102"),
            },
            traffic=split(d101=80, d102=10),
        )
    )
    error = workspace.plan_error()
    assert "split must sum to 100, got 90 (101 = 80, 102 = 10)" in error


def test_canary_promote_rollback(workspace, emulators):
    first = deployment("${eevertex_model.first.id}", "101", max_replica_count=3, autoscaling_cpu_utilization_target=75)
    # By alias, as the stacks do (the model lives in another stack there).
    nxt = deployment(f"{MODELS}/landcover@a-0123abcd-c-7a8b", "102", depends_on=["eevertex_model.next"])
    # Canary: the next model at 10%.
    apply_config(workspace, models=BOTH, deployments={"first": first, "next": nxt}, traffic=split(d101=90, d102=10))
    assert changes(workspace.plan()) == {
        "eevertex_model.next": ["create"],
        "eevertex_deployment.next": ["create"],
        "eevertex_traffic_split.t": ["update"],
    }
    workspace.apply()
    assert get(emulators, ENDPOINT)["trafficSplit"] == {"101": 90, "102": 10}
    assert changes(workspace.plan()) == {}
    # Promote: 100% to next, then the first deployment goes (its share is 0 by then).
    apply_config(workspace, models=BOTH, deployments={"next": nxt}, traffic=split(d102=100))
    before = len(emulators.journal())
    workspace.apply()
    calls = [c["method"] for c in emulators.journal()[before:]]
    assert calls.index("updateEndpoint") < calls.index("undeployModel")
    assert get(emulators, ENDPOINT)["trafficSplit"] == {"102": 100}
    assert changes(workspace.plan()) == {}
    # Roll back: the first model serves everything again, next undeployed after the switch.
    apply_config(workspace, models=BOTH, deployments={"first": first}, traffic=split(d101=100))
    before = len(emulators.journal())
    workspace.apply()
    calls = [c["method"] for c in emulators.journal()[before:]]
    assert calls == ["deployModel", "updateEndpoint", "undeployModel"]
    assert get(emulators, ENDPOINT)["trafficSplit"] == {"101": 100}
    assert changes(workspace.plan()) == {}


def test_interrupted_deploy_is_adopted(workspace, emulators):
    """A deployment that finished after Terraform lost track of it: adopted, not redeployed."""
    status, op = http_json(
        f"{emulators.vertex_url}/v1/{ENDPOINT}:deployModel",
        {
            "deployedModel": {
                "id": "103",
                "displayName": "landcover",
                "model": f"projects/{PROJECT}/locations/{REGION}/models/landcover@2",
                "dedicatedResources": {
                    "machineSpec": {"machineType": "n1-standard-4"},
                    "minReplicaCount": 1,
                    "maxReplicaCount": 2,
                },
            }
        },
    )
    assert status == 200, op
    wait_operation(emulators, op)
    first = deployment("${eevertex_model.first.id}", "101", max_replica_count=3, autoscaling_cpu_utilization_target=75)
    apply_config(
        workspace,
        models=BOTH,
        deployments={"first": first, "next": deployment("${eevertex_model.next.id}", "103")},
        traffic=split(d101=100, d103=0),
    )
    before = len(emulators.journal())
    workspace.apply()
    assert "deployModel" not in [c["method"] for c in emulators.journal()[before:]]
    assert changes(workspace.plan()) == {}


def test_alias_moved_by_hand_is_refused_at_plan(workspace, emulators):
    """A deployment naming `M@alias` stays unchanged while the alias names the deployed version;
    once the alias moves, the replacement would keep the deployed ID, and its destroy would
    undeploy what serves: refused at plan, naming the way out."""
    nxt = deployment(f"{MODELS}/landcover@a-0123abcd-c-7a8b", "104", depends_on=["eevertex_model.next"])
    first = deployment("${eevertex_model.first.id}", "101", max_replica_count=3, autoscaling_cpu_utilization_target=75)
    apply_config(workspace, models=BOTH, deployments={"first": first, "next": nxt}, traffic=split(d101=100, d104=0))
    workspace.apply()
    assert changes(workspace.plan()) == {}
    status, body = http_json(
        f"{emulators.vertex_url}/v1/{MODELS}/landcover@1:mergeVersionAliases", {"versionAliases": ["a-0123abcd-c-7a8b"]}
    )
    assert status == 200, body
    error = " ".join(workspace.plan_error().split())
    assert (
        f"deployed model 104 on {ENDPOINT} would be replaced under the same ID (model '{MODELS}/landcover@2' -> "
        f"'{MODELS}/landcover@a-0123abcd-c-7a8b')"
    ) in error
    assert "give the new deployment another deployed_model_id" in error
    # Put it back.
    status, body = http_json(
        f"{emulators.vertex_url}/v1/{MODELS}/landcover@2:mergeVersionAliases", {"versionAliases": ["a-0123abcd-c-7a8b"]}
    )
    assert status == 200, body
    assert changes(workspace.plan()) == {}


def test_vertex_error_names_the_attribute(emulators, provider_cli_config, tmp_path):
    """A deployment Vertex AI refuses (the artifact is not in the bucket): the apply fails with
    Vertex AI's message, on the attribute it is about; nothing is left deployed."""
    ws = Workspace(tmp_path / "ws", provider_cli_config, emulators.vertex_url)
    missing = model_config(model_id="missing", artifact_uri="gs://acme-dev-models/missing/sha256-0/")
    ws.write(
        {"eevertex_model": {"m": missing}, "eevertex_deployment": {"d": deployment("${eevertex_model.m.id}", "199")}}
    )
    ws.init()
    result = ws.tf("apply", "-input=false", "-no-color", "-auto-approve", ok=False)
    assert not result.ok
    assert "Vertex AI: deploy" in result.stderr and "(attribute: model)" in result.stderr, result.stderr
    assert "199" not in {d["id"] for d in get(emulators, ENDPOINT).get("deployedModels", [])}
    ws.destroy()


def test_deleting_a_deployed_model_version_is_refused(workspace, emulators, provider_cli_config, tmp_path):
    """The model leaves the config while a deployment (kept, naming it by alias) still serves
    it: the delete fails naming the deployment, and the version stays."""
    ws = Workspace(tmp_path / "ws", provider_cli_config, emulators.vertex_url)
    kept = deployment(f"{MODELS}/kept@a-0123abcd-c-5e6f", "198", depends_on=["eevertex_model.m"])
    ws.write({"eevertex_model": {"m": model_config(model_id="kept")}, "eevertex_deployment": {"d": kept}})
    ws.init()
    ws.apply()
    # Replacing the deployed version (another image, same alias key) warns in the plan.
    ws.write(
        {
            "eevertex_model": {"m": model_config(model_id="kept", container_image_uri=IMAGE_2)},
            "eevertex_deployment": {"d": kept},
        }
    )
    warned = " ".join(ws.tf("plan", "-input=false", "-no-color", "-lock=false").stdout.split())
    assert f"Warning: {MODELS}/kept@1 is deployed: replacing it (container_image_uri) deletes it" in warned
    kept.pop("depends_on")
    ws.write({"eevertex_deployment": {"d": kept}})
    result = ws.tf("apply", "-input=false", "-no-color", "-auto-approve", ok=False)
    assert not result.ok
    text = " ".join(result.stderr.split())
    assert f"{MODELS}/kept@1 is still deployed" in text
    assert "deployedModels/198" in text
    assert get(emulators, f"{MODELS}/kept@1")["versionId"] == "1"
    # Back in the config, with the dependency: destroy undeploys first.
    ws.write(
        {
            "eevertex_model": {"m": model_config(model_id="kept")},
            "eevertex_deployment": {"d": {**kept, "depends_on": ["eevertex_model.m"]}},
        }
    )
    ws.destroy()


def test_destroy_undeploys_and_keeps_the_artifact(workspace, emulators):
    objects = artifact_objects(emulators, ARTIFACT)
    workspace.destroy()
    endpoint = get(emulators, ENDPOINT)
    assert endpoint.get("deployedModels", []) == []
    status, _ = http_json(f"{emulators.vertex_url}/v1/projects/{PROJECT}/locations/{REGION}/models/landcover")
    assert status == 404
    assert artifact_objects(emulators, ARTIFACT) == objects != []
