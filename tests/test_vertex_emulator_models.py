"""The Vertex AI emulator's rules, one test per rule of its table (rehearsal/vertex_emulator.py): ids,
version aliases, model fields, refused deletes, update masks.

The emulator runs in-process with an in-memory GCS emulator and no model servers, so
these tests take seconds; the rehearsals exercise serving.
"""

from __future__ import annotations

import pytest
from vertex_emulator_support import (
    IMAGE,
    LOC,
    api,  # noqa: F401
    gcs,  # noqa: F401
)


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
