"""The Vertex AI emulator's rules, one test per rule of its table (rehearsal/vertex_emulator.py): endpoint
updates, traffic splits, deploy/undeploy/mutate, shared resource pools, dedicated resources.

The emulator runs in-process with an in-memory GCS emulator and no model servers, so
these tests take seconds; the rehearsals exercise serving.
"""

from __future__ import annotations

import time

from vertex_emulator_support import (
    IMAGE,
    LOC,
    api,  # noqa: F401
    gcs,  # noqa: F401
)


def test_update_endpoint_mask(api):
    endpoint = api.endpoint()
    assert "update_mask is required" in api.refused("INVALID_ARGUMENT", "PATCH", endpoint, {"displayName": "x"})
    api.refused("INVALID_ARGUMENT", "PATCH", endpoint, {"deployedModels": []}, updateMask="deployedModels")
    assert (
        api.ok("PATCH", endpoint, {"displayName": "new", "labels": {"a": "b"}}, updateMask="display_name,labels")[
            "displayName"
        ]
        == "new"
    )


def test_split_must_sum_to_100(api):
    endpoint, model = api.endpoint(), api.upload()["model"]
    assert "add up to 100" in api.refused(
        "INVALID_ARGUMENT",
        "POST",
        f"{endpoint}:deployModel",
        {"deployedModel": {"model": model, "dedicatedResources": {"minReplicaCount": 1}}, "trafficSplit": {"0": 50}},
    )
    first = api.deploy(endpoint, model, {"0": 100})["id"]
    second = api.deploy(endpoint, model, {"0": 30, first: 70})["id"]
    assert api.ok("GET", endpoint)["trafficSplit"] == {first: 70, second: 30}
    for split in ({first: 90}, {first: 60, second: 50}, {first: 101, second: -1}, {first: 50, "999": 50}):
        api.refused("INVALID_ARGUMENT", "PATCH", endpoint, {"trafficSplit": split}, updateMask="trafficSplit")
    api.refused(
        "INVALID_ARGUMENT",
        "POST",
        f"{endpoint}:undeployModel",
        {"deployedModelId": first, "trafficSplit": {second: 90}},
    )
    assert api.ok("PATCH", endpoint, {"trafficSplit": {first: 0, second: 100}}, updateMask="traffic_split")[
        "trafficSplit"
    ] == {first: 0, second: 100}


def test_deploy_without_split_gets_no_traffic(api):
    endpoint, model = api.endpoint(), api.upload()["model"]
    first = api.deploy(endpoint, model)["id"]
    assert "trafficSplit" not in api.ok("GET", endpoint)
    api.ok("PATCH", endpoint, {"trafficSplit": {first: 100}}, updateMask="trafficSplit")
    second = api.deploy(endpoint, model)["id"]
    assert api.ok("GET", endpoint)["trafficSplit"] == {first: 100}
    assert [d["id"] for d in api.ok("GET", endpoint)["deployedModels"]] == [first, second]


def test_deploy_resources_rules(api):
    endpoint, model = api.endpoint(), api.upload()["model"]
    bad = [
        {"automaticResources": {"minReplicaCount": 1}},
        {"dedicatedResources": {"minReplicaCount": 0}},
        {"dedicatedResources": {"minReplicaCount": 3, "maxReplicaCount": 2}},
        {},
    ]
    for resources in bad:
        api.refused(
            "INVALID_ARGUMENT",
            "POST",
            f"{endpoint}:deployModel",
            {"deployedModel": {"model": model, **resources}, "trafficSplit": {"0": 100}},
        )
    deployed = api.done(
        "POST",
        f"{endpoint}:deployModel",
        {"deployedModel": {"model": model, "dedicatedResources": {"minReplicaCount": 2}}, "trafficSplit": {"0": 100}},
    )["deployedModel"]
    assert deployed["dedicatedResources"] == {
        "machineSpec": {"machineType": "n1-standard-2"},
        "minReplicaCount": 2,
        "maxReplicaCount": 2,
    }
    api.refused(
        "NOT_FOUND",
        "POST",
        f"{endpoint}:deployModel",
        {"deployedModel": {"model": f"{LOC}/models/none", "dedicatedResources": {"minReplicaCount": 1}}},
    )


def test_deploy_without_artifact_fails_the_operation(api):
    endpoint = api.endpoint()
    body = {
        "modelId": "empty",
        "model": {"displayName": "x", "artifactUri": "gs://models/none/", "containerSpec": {"imageUri": IMAGE}},
    }
    api.done("POST", f"{LOC}/models:upload", body)
    op = api.wait(
        api.ok(
            "POST",
            f"{endpoint}:deployModel",
            {
                "deployedModel": {"model": f"{LOC}/models/empty", "dedicatedResources": {"minReplicaCount": 1}},
                "trafficSplit": {"0": 100},
            },
        )
    )
    assert op["error"]["code"] == 9 and "no artifact files" in op["error"]["message"]
    assert "deployedModels" not in api.ok("GET", endpoint)


def test_undeploy_with_traffic_refused(api):
    endpoint, model = api.endpoint(), api.upload()["model"]
    first = api.deploy(endpoint, model, {"0": 100})["id"]
    second = api.deploy(endpoint, model, {"0": 40, first: 60})["id"]
    assert "traffic" in api.refused(
        "FAILED_PRECONDITION", "POST", f"{endpoint}:undeployModel", {"deployedModelId": first}
    )
    api.done("POST", f"{endpoint}:undeployModel", {"deployedModelId": first, "trafficSplit": {second: 100}})
    assert api.ok("GET", endpoint)["trafficSplit"] == {second: 100}
    # The last one goes without a split, and leaves none.
    api.done("POST", f"{endpoint}:undeployModel", {"deployedModelId": second})
    assert "trafficSplit" not in api.ok("GET", endpoint)
    api.refused("NOT_FOUND", "POST", f"{endpoint}:undeployModel", {"deployedModelId": second})


def test_traffic_log_shows_every_instant_nothing_served(api):
    """`/emulator/traffic`: after each change of an endpoint, who takes its traffic; an undeploy
    of the only serving model is an instant (the last entry) when nothing did."""
    endpoint, model = api.endpoint("223456789"), api.upload()["model"]
    first = api.deploy(endpoint, model, {"0": 100})["id"]
    api.done("POST", f"{endpoint}:undeployModel", {"deployedModelId": first})
    log = [e["serving"] for e in api.ok("GET", "traffic", api="emulator")["traffic"] if e["endpoint"] == endpoint]
    assert log == [[], [first], []]


def test_mutate_mask(api):
    endpoint, model = api.endpoint(), api.upload()["model"]
    deployed = api.deploy(endpoint, model, {"0": 100})
    body = {"deployedModel": {"id": deployed["id"], "dedicatedResources": {"minReplicaCount": 2, "maxReplicaCount": 4}}}
    api.refused("INVALID_ARGUMENT", "POST", f"{endpoint}:mutateDeployedModel", body)
    api.refused(
        "INVALID_ARGUMENT", "POST", f"{endpoint}:mutateDeployedModel", body, updateMask="dedicatedResources.machineSpec"
    )
    api.refused(
        "INVALID_ARGUMENT",
        "POST",
        f"{endpoint}:mutateDeployedModel",
        {"deployedModel": {"id": deployed["id"], "dedicatedResources": {"minReplicaCount": 5}}},
        updateMask="dedicatedResources.minReplicaCount",
    )
    mutated = api.done(
        "POST",
        f"{endpoint}:mutateDeployedModel",
        body,
        updateMask="dedicatedResources.minReplicaCount,dedicatedResources.maxReplicaCount",
    )
    assert mutated["deployedModel"]["dedicatedResources"]["maxReplicaCount"] == 4


def _pool(api, pool_id: str = "ee-pool") -> str:
    body = {
        "deploymentResourcePoolId": pool_id,
        "deploymentResourcePool": {
            "dedicatedResources": {
                "machineSpec": {"machineType": "n1-standard-4"},
                "minReplicaCount": 1,
                "maxReplicaCount": 2,
            }
        },
    }
    return api.done("POST", f"{LOC}/deploymentResourcePools", body)["name"]


def test_shared_pool_rules(api):
    for bad in ("Pool", "1pool", "pool-", "p" * 64):
        api.refused(
            "INVALID_ARGUMENT",
            "POST",
            f"{LOC}/deploymentResourcePools",
            {
                "deploymentResourcePoolId": bad,
                "deploymentResourcePool": {
                    "dedicatedResources": {"machineSpec": {"machineType": "n1-standard-4"}, "minReplicaCount": 1}
                },
            },
        )
    api.refused(
        "INVALID_ARGUMENT",
        "POST",
        f"{LOC}/deploymentResourcePools",
        {"deploymentResourcePoolId": "no-machine", "deploymentResourcePool": {}},
    )
    pool = _pool(api)
    assert pool == f"{LOC}/deploymentResourcePools/ee-pool"
    api.refused(
        "ALREADY_EXISTS",
        "POST",
        f"{LOC}/deploymentResourcePools",
        {
            "deploymentResourcePoolId": "ee-pool",
            "deploymentResourcePool": {
                "dedicatedResources": {"machineSpec": {"machineType": "n1-standard-4"}, "minReplicaCount": 1}
            },
        },
    )
    endpoint, model = api.endpoint(), api.upload()["model"]

    def deploy(deployed):
        return api.call(
            "POST",
            f"{endpoint}:deployModel",
            {"deployedModel": {"model": model, **deployed}, "trafficSplit": {"0": 100}},
        )

    # A oneof: not both; a pool that exists, in the endpoint's project and region.
    both = deploy({"sharedResources": pool, "dedicatedResources": {"minReplicaCount": 1}}).json()["error"]
    assert both["status"] == "INVALID_ARGUMENT" and "oneof" in both["message"]
    assert deploy({"sharedResources": f"{LOC}/deploymentResourcePools/none"}).json()["error"]["status"] == "NOT_FOUND"
    elsewhere = "projects/acme-geo-dev/locations/europe-west4/deploymentResourcePools/ee-pool"
    assert deploy({"sharedResources": elsewhere}).json()["error"]["status"] == "NOT_FOUND"
    deployed = api.done(
        "POST",
        f"{endpoint}:deployModel",
        {"deployedModel": {"model": model, "sharedResources": pool}, "trafficSplit": {"0": 100}},
    )["deployedModel"]
    assert deployed["sharedResources"] == pool and "dedicatedResources" not in deployed
    assert api.ok("GET", f"{pool}:queryDeployedModels") == {
        "deployedModelRefs": [{"endpoint": endpoint, "deployedModelId": deployed["id"]}],
        "totalDeployedModelCount": 1,
        "totalEndpointCount": 1,
    }
    api.refused(
        "INVALID_ARGUMENT",
        "POST",
        f"{endpoint}:mutateDeployedModel",
        {
            "deployedModel": {"id": deployed["id"], "dedicatedResources": {"minReplicaCount": 2}},
            "updateMask": "dedicatedResources.minReplicaCount",
        },
    )
    api.refused("FAILED_PRECONDITION", "DELETE", pool)
    api.done("POST", f"{endpoint}:undeployModel", {"deployedModelId": deployed["id"]})
    api.done("DELETE", pool)
    api.refused("NOT_FOUND", "GET", pool)


def test_shared_pool_refuses_a_custom_container(api):
    pool, endpoint = _pool(api), api.endpoint()
    body = {
        "modelId": "own",
        "model": {
            "displayName": "own",
            "artifactUri": "gs://models/m/",
            "containerSpec": {
                "imageUri": "us-central1-docker.pkg.dev/acme-geo-dev/ee-serving/ee-serving-tf-cpu@sha256:" + "a" * 64
            },
        },
    }
    model = api.done("POST", f"{LOC}/models:upload", body)["model"]
    message = api.refused(
        "INVALID_ARGUMENT",
        "POST",
        f"{endpoint}:deployModel",
        {"deployedModel": {"model": model, "sharedResources": pool}, "trafficSplit": {"0": 100}},
    )
    assert "custom container" in message and "model-co-hosting" in message


def test_dedicated_resources_rules(api):
    endpoint, model = api.endpoint(), api.upload()["model"]
    cpu = "aiplatform.googleapis.com/prediction/online/cpu/utilization"
    duty = "aiplatform.googleapis.com/prediction/online/accelerator/duty_cycle"
    requests_ = "aiplatform.googleapis.com/prediction/online/request_count"
    bad = [
        ({"autoscalingMetricSpecs": [{"metricName": "prometheus.googleapis.com/x", "target": 5}]}, "is not supported"),
        ({"autoscalingMetricSpecs": [{"metricName": cpu, "target": 101}]}, "allowed: 1-100"),
        ({"autoscalingMetricSpecs": [{"metricName": cpu, "target": 0}]}, "allowed: 1-100"),
        (
            {"autoscalingMetricSpecs": [{"metricName": cpu, "target": 70}, {"metricName": cpu, "target": 80}]},
            "at most one per metric",
        ),
        ({"autoscalingMetricSpecs": [{"metricName": duty, "target": 70}]}, "needs machine_spec.accelerator_count"),
        ({"autoscalingMetricSpecs": [{"metricName": requests_, "target": 0}]}, "requests per minute"),
        ({"requiredReplicaCount": 2}, "must be <= min_replica_count (1)"),
        ({"spot": "yes"}, "is not a bool"),
    ]
    for resources, message in bad:
        assert message in api.refused(
            "INVALID_ARGUMENT",
            "POST",
            f"{endpoint}:deployModel",
            {
                "deployedModel": {
                    "model": model,
                    "dedicatedResources": {
                        "machineSpec": {"machineType": "n1-standard-4"},
                        "minReplicaCount": 1,
                        **resources,
                    },
                }
            },
        )
    deployed = api.deploy(
        endpoint,
        model,
        {"0": 100},
        minReplicaCount=2,
        spot=False,
        requiredReplicaCount=1,
        autoscalingMetricSpecs=[{"metricName": requests_, "target": 900}, {"metricName": cpu, "target": 70}],
    )
    # Read back as Vertex AI's JSON has it: a false spot is left out.
    resources = api.ok("GET", endpoint)["deployedModels"][0]["dedicatedResources"]
    assert "spot" not in resources and resources["requiredReplicaCount"] == 1
    # mutateDeployedModel checks the result by the same rules; a masked field left out is cleared.
    mask = "dedicatedResources.requiredReplicaCount,dedicatedResources.autoscalingMetricSpecs"
    assert "must be <= min_replica_count" in api.refused(
        "INVALID_ARGUMENT",
        "POST",
        f"{endpoint}:mutateDeployedModel",
        {"deployedModel": {"id": deployed["id"], "dedicatedResources": {"requiredReplicaCount": 3}}},
        updateMask=mask,
    )
    api.done(
        "POST",
        f"{endpoint}:mutateDeployedModel",
        {"deployedModel": {"id": deployed["id"], "dedicatedResources": {}}},
        updateMask=mask,
    )
    resources = api.ok("GET", endpoint)["deployedModels"][0]["dedicatedResources"]
    assert "requiredReplicaCount" not in resources and "autoscalingMetricSpecs" not in resources
    assert "cannot be mutated" in api.refused(
        "INVALID_ARGUMENT",
        "POST",
        f"{endpoint}:mutateDeployedModel",
        {"deployedModel": {"id": deployed["id"], "dedicatedResources": {"spot": True}}},
        updateMask="dedicatedResources.spot",
    )
    assert "cannot be mutated" in api.refused(
        "INVALID_ARGUMENT",
        "POST",
        f"{endpoint}:mutateDeployedModel",
        {"deployedModel": {"id": deployed["id"], "enableAccessLogging": True}},
        updateMask="enableAccessLogging",
    )


def test_a_held_call_takes_effect_and_its_answer_waits_for_the_release(api):
    """/emulator/hold: the rehearsal kills an apply between a call's effect and its answer."""
    import threading

    import requests

    endpoint, model = api.endpoint(), api.upload()["model"]
    first = api.deploy(endpoint, model, {"0": 100})["id"]
    admin = api.url + "/emulator"
    assert requests.post(f"{admin}/hold", json={"method": "updateEndpoint"}, timeout=10).status_code == 400
    requests.post(f"{admin}/hold", json={"method": "updateEndpoint", "resource": endpoint}, timeout=10)
    answers: list[int] = []
    patch = threading.Thread(
        target=lambda: answers.append(
            api.call("PATCH", endpoint, {"displayName": "held"}, updateMask="display_name").status_code
        )
    )
    patch.start()
    for _ in range(200):
        if requests.get(f"{admin}/hold", timeout=10).json()["held"]:
            break
        time.sleep(0.02)
    assert requests.get(f"{admin}/hold", timeout=10).json()["held"]
    assert api.ok("GET", endpoint)["displayName"] == "held"  # in effect, others answered
    assert not answers  # its own answer still held
    requests.post(f"{admin}/release", json={}, timeout=10)
    patch.join(10)
    assert answers == [200]
    # Released: the next such call is answered at once.
    api.ok("PATCH", endpoint, {"trafficSplit": {first: 100}}, updateMask="traffic_split")
