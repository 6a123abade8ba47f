"""The Vertex AI emulator's rules, one test per rule of its table (rehearsal/vertex_emulator.py).

The emulator runs in-process with an in-memory GCS emulator and no model servers, so
these tests take seconds; the rehearsals exercise serving.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import ThreadingHTTPServer

import pytest
import requests

from rehearsal.vertex_emulator import Emulator, make_handler
from serving.local import free_port

LOC = "projects/acme-geo-dev/locations/us-central1"
IMAGE = "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"


class Api:
    def __init__(self, url: str):
        self.url = url

    def call(self, method: str, path: str, body: dict | None = None, api: str = "v1", **query) -> requests.Response:
        return requests.request(method, f"{self.url}/{api}/{path}", json=body, params=query, timeout=30)

    def ok(self, method: str, path: str, body: dict | None = None, **query) -> dict:
        response = self.call(method, path, body, **query)
        assert response.status_code == 200, response.text
        return response.json()

    def refused(self, status: str, method: str, path: str, body: dict | None = None, **query) -> str:
        response = self.call(method, path, body, **query)
        error = response.json()["error"]
        assert (error["status"], response.status_code) == (status, error["code"]), response.text
        return error["message"]

    def wait(self, op: dict, api: str = "v1") -> dict:
        for _ in range(200):
            op = self.ok("GET", op["name"]) if api == "v1" else self.call("GET", op["name"], api=api).json()
            if op["done"]:
                return op
            time.sleep(0.02)
        raise TimeoutError(op)

    def done(self, method: str, path: str, body: dict | None = None, **query) -> dict:
        op = self.wait(self.ok(method, path, body, **query))
        assert "error" not in op, op
        return op["response"]

    def upload(self, model_id: str | None = "m", aliases: list[str] | None = None, parent: str | None = None) -> dict:
        body = {
            "model": {
                "displayName": "landcover",
                "artifactUri": "gs://models/m/",
                "containerSpec": {"imageUri": IMAGE, "grpcPorts": [{"containerPort": 8500}]},
                **({"versionAliases": aliases} if aliases is not None else {}),
            }
        }
        if parent:
            body["parentModel"] = parent
        elif model_id:
            body["modelId"] = model_id
        return self.done("POST", f"{LOC}/models:upload", body)

    def endpoint(self, endpoint_id: str | None = "123456789") -> str:
        query = {"endpointId": endpoint_id} if endpoint_id else {}
        return self.done("POST", f"{LOC}/endpoints", {"displayName": "ep"}, **query)["name"]

    def deploy(
        self, endpoint: str, model: str, split: dict | None = None, deployed_id: str | None = None, **resources
    ) -> dict:
        deployed = {
            "model": model,
            "displayName": "d",
            "dedicatedResources": {"machineSpec": {"machineType": "n1-standard-4"}, "minReplicaCount": 1, **resources},
        }
        if deployed_id:
            deployed["id"] = deployed_id
        body = {"deployedModel": deployed, **({"trafficSplit": split} if split is not None else {})}
        return self.done("POST", f"{endpoint}:deployModel", body)["deployedModel"]


@pytest.fixture(scope="module")
def gcs():
    from gcp_storage_emulator.server import create_server
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    url = f"http://127.0.0.1:{port}"
    client = storage.Client(project="test", credentials=AnonymousCredentials(), client_options={"api_endpoint": url})
    client.create_bucket("models").blob("m/saved_model.pb").upload_from_string(b"model")
    yield url
    server.stop()


def _serve(tmp_path, gcs, **options):
    emulator = Emulator(tmp_path, gcs, serving=False, **options)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(emulator))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    return httpd, Api(f"http://127.0.0.1:{httpd.server_address[1]}")


@pytest.fixture
def api(tmp_path, gcs):
    httpd, client = _serve(tmp_path, gcs)
    yield client
    httpd.shutdown()


def test_endpoint_id_rule(api):
    for bad in ("1234567890", "0123", "My-endpoint", "a-", "-a", "a" * 64, "12a"):
        message = api.refused("INVALID_ARGUMENT", "POST", f"{LOC}/endpoints", {"displayName": "e"}, endpointId=bad)
        assert "at most 9 digits" in message
    for good in ("123456789", "1", "my-endpoint", "a", "a" * 63, "e-2"):
        assert api.endpoint(good) == f"{LOC}/endpoints/{good}"
    api.refused("ALREADY_EXISTS", "POST", f"{LOC}/endpoints", {"displayName": "e"}, endpointId="1")


def test_generated_ids(api):
    endpoint = api.endpoint(None)
    model = api.upload(None)["model"]
    deployed = api.deploy(endpoint, model, {"0": 100})
    for generated in (endpoint.rsplit("/", 1)[1], model.rsplit("/", 1)[1], deployed["id"]):
        assert len(generated) == 19 and generated.isdigit() and generated[0] != "0", generated


def test_model_id_rule(api):
    for bad in ("1abc", "-a", "Abc", "a" * 64, "a.b"):
        assert "allowed: up to 63 of [a-z0-9_-]" in api.refused(
            "INVALID_ARGUMENT",
            "POST",
            f"{LOC}/models:upload",
            {"modelId": bad, "model": {"displayName": "x", "containerSpec": {"imageUri": IMAGE}}},
        )
    for good in ("_leading-underscore", "a", "a" * 63, "landcover-torch-59a6b0b56751"):
        assert api.upload(good)["model"] == f"{LOC}/models/{good}"
    api.refused("INVALID_ARGUMENT", "POST", f"{LOC}/models:upload", {"modelId": "x", "model": {"displayName": "x"}})


def test_deployed_model_id_rule(api):
    endpoint, model = api.endpoint(), api.upload()["model"]
    for bad in ("12345678901", "abc"):
        body = {
            "deployedModel": {"id": bad, "model": model, "dedicatedResources": {"minReplicaCount": 1}},
            "trafficSplit": {"0": 100},
        }
        api.refused("INVALID_ARGUMENT", "POST", f"{endpoint}:deployModel", body)
    api.deploy(endpoint, model, {"0": 100}, deployed_id="1234567890")
    body = {"deployedModel": {"id": "1234567890", "model": model, "dedicatedResources": {"minReplicaCount": 1}}}
    api.refused("ALREADY_EXISTS", "POST", f"{endpoint}:deployModel", body)


def test_version_aliases(api):
    base = f"{LOC}/models/m"
    assert api.upload("m", ["spec-a"]) == {
        "@type": "type.googleapis.com/google.cloud.aiplatform.v1.UploadModelResponse",
        "model": base,
        "modelVersionId": "1",
    }
    assert api.upload(parent=base, aliases=["spec-b"])["modelVersionId"] == "2"
    assert api.ok("GET", base)["versionId"] == "1"
    assert api.ok("GET", f"{base}@default")["versionAliases"] == ["default", "spec-a"]
    assert api.ok("GET", f"{base}@2")["versionAliases"] == ["spec-b"]
    assert api.ok("GET", f"{base}@spec-b")["versionId"] == "2"
    api.refused("NOT_FOUND", "GET", f"{base}@spec-c")
    for bad in (["Spec"], ["s"], ["spec-"], ["1a"]):
        api.refused(
            "INVALID_ARGUMENT",
            "POST",
            f"{LOC}/models:upload",
            {
                "parentModel": base,
                "model": {"displayName": "x", "containerSpec": {"imageUri": IMAGE}, "versionAliases": bad},
            },
        )
    api.refused(
        "ALREADY_EXISTS",
        "POST",
        f"{LOC}/models:upload",
        {
            "parentModel": base,
            "model": {"displayName": "x", "containerSpec": {"imageUri": IMAGE}, "versionAliases": ["spec-a"]},
        },
    )
    # An upload carrying `default` takes it (the SDK's is_default_version=True does this).
    api.upload(parent=base, aliases=["default", "spec-c"])
    assert api.ok("GET", base)["versionId"] == "3"
    assert api.ok("GET", f"{base}@1")["versionAliases"] == ["spec-a"]
    versions = api.ok("GET", f"{base}:listVersions")
    assert [v["versionId"] for v in versions["models"]] == ["1", "2", "3"] and "nextPageToken" not in versions


def test_model_output_fields(api):
    api.upload("m")
    model = api.ok("GET", f"{LOC}/models/m")
    assert model["supportedDeploymentResourcesTypes"] == ["DEDICATED_RESOURCES", "SHARED_RESOURCES"]
    assert {
        "name",
        "versionId",
        "versionAliases",
        "versionCreateTime",
        "versionUpdateTime",
        "createTime",
        "updateTime",
        "etag",
        "displayName",
        "artifactUri",
        "containerSpec",
    } <= set(model)
    assert model["containerSpec"]["grpcPorts"] == [{"containerPort": 8500}]
    assert "deployedModels" not in model
    endpoint = api.endpoint()
    deployed = api.deploy(endpoint, f"{LOC}/models/m@default", {"0": 100})
    assert api.ok("GET", f"{LOC}/models/m")["deployedModels"] == [
        {"endpoint": endpoint, "deployedModelId": deployed["id"]}
    ]
    assert deployed["model"] == f"{LOC}/models/m" and deployed["modelVersionId"] == "1"


def test_delete_default_version_refused(api):
    from google.api_core import exceptions
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform_v1

    base = f"{LOC}/models/m"
    api.upload("m")
    assert "only version" in api.refused("FAILED_PRECONDITION", "DELETE", f"{base}@1:deleteVersion")
    api.upload(parent=base, aliases=["spec-b"])
    assert "default alias" in api.refused("FAILED_PRECONDITION", "DELETE", f"{base}@1:deleteVersion")
    assert "version ID" in api.refused("INVALID_ARGUMENT", "DELETE", f"{base}@spec-b:deleteVersion")
    # The real client (REST) raises by HTTP code: BadRequest, carrying the canonical status.
    models = aiplatform_v1.ModelServiceClient(
        client_options=ClientOptions(api_endpoint=api.url), transport="rest", credentials=AnonymousCredentials()
    )
    with pytest.raises(exceptions.BadRequest, match="default alias") as refused:
        models.delete_model_version(name=f"{base}@1").result()
    assert refused.value.response.json()["error"]["status"] == "FAILED_PRECONDITION"
    # Once `default` has moved, the old version can go.
    api.ok("POST", f"{base}@2:mergeVersionAliases", {"versionAliases": ["default"]})
    api.done("DELETE", f"{base}@1:deleteVersion")
    assert [v["versionId"] for v in api.ok("GET", f"{base}:listVersions")["models"]] == ["2"]


def test_delete_deployed_model_refused(api):
    base = f"{LOC}/models/m"
    api.upload("m")
    api.upload(parent=base, aliases=["spec-b"])
    endpoint = api.endpoint()
    api.deploy(endpoint, f"{base}@spec-b", {"0": 100})
    assert "undeploy it first" in api.refused("FAILED_PRECONDITION", "DELETE", base)
    api.ok("POST", f"{base}@2:mergeVersionAliases", {"versionAliases": ["default"]})
    assert "undeploy it first" in api.refused("FAILED_PRECONDITION", "DELETE", f"{base}@2:deleteVersion")


def test_delete_endpoint_with_models_refused(api):
    endpoint = api.endpoint()
    deployed = api.deploy(endpoint, api.upload()["model"], {"0": 100})
    assert "undeploy them first" in api.refused("FAILED_PRECONDITION", "DELETE", endpoint)
    api.done("POST", f"{endpoint}:undeployModel", {"deployedModelId": deployed["id"]})
    api.done("DELETE", endpoint)
    api.refused("NOT_FOUND", "GET", endpoint)


def test_merge_version_aliases(api):
    base = f"{LOC}/models/m"
    api.upload("m", ["golden"])
    api.upload(parent=base, aliases=["spec-b"])
    assert "version ID" in api.refused(
        "INVALID_ARGUMENT", "POST", f"{base}@spec-b:mergeVersionAliases", {"versionAliases": ["x1"]}
    )
    assert "cannot be removed" in api.refused(
        "INVALID_ARGUMENT", "POST", f"{base}@1:mergeVersionAliases", {"versionAliases": ["-default"]}
    )
    api.refused("INVALID_ARGUMENT", "POST", f"{base}@1:mergeVersionAliases", {"versionAliases": ["Bad_alias"]})
    merged = api.ok("POST", f"{base}@2:mergeVersionAliases", {"versionAliases": ["golden", "-spec-b"]})
    assert merged["versionAliases"] == ["golden"]
    assert api.ok("GET", f"{base}@1")["versionAliases"] == ["default"]


def test_update_model_mask(api):
    base = f"{LOC}/models/m"
    api.upload("m")
    assert "update_mask is required" in api.refused("INVALID_ARGUMENT", "PATCH", base, {"displayName": "n"})
    api.refused("INVALID_ARGUMENT", "PATCH", base, {"artifactUri": "gs://x/y"}, updateMask="artifactUri")
    assert "separately" in api.refused(
        "FAILED_PRECONDITION", "PATCH", f"{base}@1", {"displayName": "n"}, updateMask="displayName"
    )
    assert (
        api.ok("PATCH", base, {"displayName": "renamed", "labels": {"a": "1"}}, updateMask="displayName,labels")[
            "displayName"
        ]
        == "renamed"
    )
    version = api.ok(
        "PATCH",
        f"{base}@1",
        {"versionDescription": "v1", "labels": {"b": "2"}},
        updateMask="version_description,labels",
    )
    assert version["versionDescription"] == "v1" and version["labels"] == {"a": "1", "b": "2"}


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


def test_predict_over_1_5_mb_refused(api):
    endpoint = api.endpoint()
    body = json.dumps({"instances": ["x" * 1_600_000]}).encode()
    response = requests.post(f"{api.url}/v1/{endpoint}:predict", data=body, timeout=30)
    assert response.status_code == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert "payload size exceeds the limit" in response.json()["error"]["message"]
    # Under the limit, the request gets as far as routing.
    api.refused("FAILED_PRECONDITION", "POST", f"{endpoint}:predict", {"instances": ["x" * 1_400_000]})


def test_error_shape(api):
    response = api.call("GET", f"{LOC}/endpoints/404")
    assert response.status_code == 404
    assert response.json() == {
        "error": {"code": 404, "status": "NOT_FOUND", "message": f"Endpoint {LOC}/endpoints/404 is not found."}
    }


def test_operations_v1_and_v1beta1(api):
    op = api.ok("POST", f"{LOC}/endpoints", {"displayName": "e"}, endpointId="7")
    assert op["name"].startswith(f"{LOC}/endpoints/7/operations/")
    assert op["metadata"]["@type"] == "type.googleapis.com/google.cloud.aiplatform.v1.CreateEndpointOperationMetadata"
    assert set(op["metadata"]["genericMetadata"]) == {"createTime", "updateTime"}
    v1, beta = api.wait(op), api.wait(op, api="v1beta1")
    assert v1["response"]["@type"] == "type.googleapis.com/google.cloud.aiplatform.v1.Endpoint"
    assert beta["response"]["@type"] == "type.googleapis.com/google.cloud.aiplatform.v1beta1.Endpoint"
    assert beta["response"]["name"] == f"{LOC}/endpoints/7"


def test_project_numbers(tmp_path, gcs):
    httpd, api = _serve(tmp_path, gcs, project_numbers=True)
    try:
        name = api.endpoint("5")
        number = name.split("/")[1]
        assert number.isdigit() and len(number) == 12
        assert api.ok("GET", f"{LOC}/endpoints/5")["name"] == name
        assert api.ok("GET", name)["name"] == name
    finally:
        httpd.shutdown()


def test_the_rehearsal_guides_rule_table_is_the_emulators():
    import re

    from conftest import ROOT

    import rehearsal.vertex_emulator as emulator

    table = "\n".join(line for line in emulator.__doc__.splitlines() if line.startswith("|"))
    readme = (ROOT / "docs" / "guides" / "rehearsal.md").read_text()
    match = re.search(r"<!-- emulator-rules:start -->\n(.*?)\n<!-- emulator-rules:end -->", readme, re.S)
    assert match and match.group(1) == table
    # Every test the table names exists.
    names = set(re.findall(r"\b(test_[a-z0-9_]+)", table))
    assert names <= set(globals()), names - set(globals())


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


def _bigquery(api, method: str, path: str, body: dict | None = None, **query) -> requests.Response:
    return requests.request(method, f"{api.url}/bigquery/v2/{path}", json=body, params=query, timeout=30)


def test_bigquery_dataset_rules(api):
    def make(dataset_id, **extra):
        return _bigquery(
            api,
            "POST",
            "projects/acme-geo-dev/datasets",
            {
                "datasetReference": {"datasetId": dataset_id, "projectId": "acme-geo-dev"},
                "location": "us-central1",
                **extra,
            },
        )

    for bad in ("with-dash", "dot.ted", "", "x" * 1025):
        assert make(bad).status_code == 400, bad
    key = {"kmsKeyName": "projects/acme-geo-dev/locations/europe-west4/keyRings/r/cryptoKeys/k"}
    assert make("elsewhere_key", defaultEncryptionConfiguration=key).status_code == 400
    created = make("ee_logs_1").json()
    assert (created["id"], created["location"], created["datasetReference"]) == (
        "acme-geo-dev:ee_logs_1",
        "us-central1",
        {"datasetId": "ee_logs_1", "projectId": "acme-geo-dev"},
    )
    assert make("ee_logs_1").status_code == 409
    patched = _bigquery(api, "PATCH", "projects/acme-geo-dev/datasets/ee_logs_1", {"labels": {"env": "dev"}}).json()
    assert patched["labels"] == {"env": "dev"} and patched["etag"] != created["etag"]
    assert _bigquery(api, "PATCH", "projects/acme-geo-dev/datasets/ee_logs_1", {"location": "EU"}).status_code == 400
    assert _bigquery(api, "DELETE", "projects/acme-geo-dev/datasets/ee_logs_1").status_code == 200
    assert _bigquery(api, "GET", "projects/acme-geo-dev/datasets/ee_logs_1").status_code == 404


def test_request_response_logging_rules(api):
    def config(uri, rate=0.5):
        return {
            "enabled": True,
            "samplingRate": rate,
            "bigqueryDestination": {"outputUri": uri},
        }

    def create(endpoint_id, logging):
        return api.call(
            "POST",
            f"{LOC}/endpoints",
            {
                "displayName": "ep",
                "predictRequestResponseLoggingConfig": logging,
            },
            endpointId=endpoint_id,
        )

    for rate in (0, 1.5, -0.1):
        assert create("1", config("bq://acme-geo-dev.logs.t", rate)).json()["error"]["status"] == "INVALID_ARGUMENT"
    assert create("1", config("gs://bucket/x")).json()["error"]["status"] == "INVALID_ARGUMENT"
    # The dataset must exist.
    assert "does not exist" in create("2", config("bq://acme-geo-dev.logs.requests")).json()["error"]["message"]
    _bigquery(
        api,
        "POST",
        "projects/acme-geo-dev/datasets",
        {"datasetReference": {"datasetId": "logs"}, "location": "us-central1"},
    )
    endpoint = api.done(
        "POST",
        f"{LOC}/endpoints",
        {"displayName": "ep", "predictRequestResponseLoggingConfig": config("bq://acme-geo-dev.logs.requests")},
        endpointId="3",
    )["name"]
    assert api.ok("GET", endpoint)["predictRequestResponseLoggingConfig"] == config("bq://acme-geo-dev.logs.requests")
    # Vertex AI made the table; another endpoint cannot take it, this one may change its rate.
    table = _bigquery(api, "GET", "projects/acme-geo-dev/datasets/logs/tables/requests").json()
    assert table["tableReference"]["tableId"] == "requests" and "_owner" not in table
    assert "exists already" in create("4", config("bq://acme-geo-dev.logs.requests")).json()["error"]["message"]
    api.ok(
        "PATCH",
        endpoint,
        {"predictRequestResponseLoggingConfig": config("bq://acme-geo-dev.logs.requests", 1)},
        updateMask="predictRequestResponseLoggingConfig",
    )
    assert api.ok("GET", endpoint)["predictRequestResponseLoggingConfig"]["samplingRate"] == 1
    # The dataset holds a table now: it goes only with deleteContents.
    assert _bigquery(api, "DELETE", "projects/acme-geo-dev/datasets/logs").status_code == 400
    assert _bigquery(api, "DELETE", "projects/acme-geo-dev/datasets/logs", deleteContents="true").status_code == 200


def _policy(**threshold) -> dict:
    base = {
        "filter": 'metric.type="aiplatform.googleapis.com/prediction/online/prediction_latencies" AND '
        'resource.type="aiplatform.googleapis.com/Endpoint"',
        "comparison": "COMPARISON_GT",
        "thresholdValue": 100,
        "duration": "300s",
        "aggregations": [
            {
                "alignmentPeriod": "300s",
                "perSeriesAligner": "ALIGN_PERCENTILE_99",
                "crossSeriesReducer": "REDUCE_MAX",
                "groupByFields": ["metric.label.deployed_model_id"],
            }
        ],
    }
    return {
        "displayName": "p",
        "combiner": "OR",
        "conditions": [{"displayName": "c", "conditionThreshold": {**base, **threshold}}],
    }


def test_alert_policy_rules(api):
    url = f"{api.url}/monitoring/v3/projects/acme-geo-dev/alertPolicies"
    post = lambda body: requests.post(url, json=body, timeout=30)  # noqa: E731
    responses = 'metric.type="aiplatform.googleapis.com/prediction/online/response_count"'
    bad = [
        _policy(filter="x" * 2049),
        _policy(filter='metric.type="aiplatform.googleapis.com/prediction/online/prediction_latencies"'),
        _policy(comparison="COMPARISON_GE"),
        _policy(duration="90s"),
        _policy(aggregations=[{"perSeriesAligner": "ALIGN_PERCENTILE_99"}]),
        _policy(aggregations=[{"alignmentPeriod": "30s", "perSeriesAligner": "ALIGN_RATE"}]),
        _policy(aggregations=[{"alignmentPeriod": "300s", "crossSeriesReducer": "REDUCE_SUM"}]),
        _policy(filter=f'{responses} AND resource.type="aiplatform.googleapis.com/Endpoint"'),  # p99 of a count
        _policy(
            denominatorFilter=responses,
            denominatorAggregations=[
                {  # grouped otherwise than the numerator
                    "alignmentPeriod": "300s",
                    "perSeriesAligner": "ALIGN_RATE",
                    "crossSeriesReducer": "REDUCE_SUM",
                }
            ],
        ),
        {**_policy(), "conditions": _policy()["conditions"] * 7},
        {**_policy(), "notificationChannels": ["channel-1"]},
    ]
    for body in bad:
        assert post(body).status_code == 400, body
    unknown = post(
        _policy(filter='metric.type="aiplatform.googleapis.com/prediction/online/nope" AND resource.type="x"')
    )
    assert unknown.status_code == 404
    created = post(_policy()).json()
    assert created["name"].startswith("projects/acme-geo-dev/alertPolicies/") and created["enabled"] is True
    patched = requests.patch(
        f"{api.url}/monitoring/v3/{created['name']}",
        json={"displayName": "renamed"},
        params={"updateMask": "displayName"},
        timeout=30,
    ).json()
    assert patched["displayName"] == "renamed" and patched["conditions"] == created["conditions"]
    assert requests.delete(f"{api.url}/monitoring/v3/{created['name']}", timeout=30).status_code == 200
    assert requests.get(f"{api.url}/monitoring/v3/{created['name']}", timeout=30).status_code == 404


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
