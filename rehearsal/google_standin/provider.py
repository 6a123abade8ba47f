"""The stand-in google provider: provider block, HTTP, and its resources.

Attribute names and kinds follow the google provider 8.x schema for what the stacks set
(registry docs of google_storage_bucket, google_storage_bucket_object, google_vertex_ai_endpoint,
google_vertex_ai_deployment_resource_pool, google_artifact_registry_repository,
google_artifact_registry_repository_iam_member, google_bigquery_dataset,
google_monitoring_alert_policy and the data source google_project); REST calls follow the Cloud
Storage JSON API, Vertex AI v1, Artifact Registry v1, Cloud Resource Manager v1, BigQuery v2 and
Cloud Monitoring v3, as the real provider makes them. (The real provider's list blocks, such as
an alert policy's `conditions`, are sets here: the framework has no list nesting.)
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from tf.iface import DataSource, Provider, Resource
from tf.schema import Attribute, Block, NestedBlock, NestMode, Schema
from tf.types import Bool, List, Map, Number, String

from provider.common import SingleBlock, attr, known

_S, _B = String(), Bool()
# The real provider's variables for these settings (registry docs, "Provider Reference").
ENVIRONMENT = {"storage_custom_endpoint": "GOOGLE_STORAGE_CUSTOM_ENDPOINT",
               "vertex_ai_custom_endpoint": "GOOGLE_VERTEX_AI_CUSTOM_ENDPOINT",
               "artifact_registry_custom_endpoint": "GOOGLE_ARTIFACT_REGISTRY_CUSTOM_ENDPOINT",
               "resource_manager_custom_endpoint": "GOOGLE_RESOURCE_MANAGER_CUSTOM_ENDPOINT",
               "big_query_custom_endpoint": "GOOGLE_BIG_QUERY_CUSTOM_ENDPOINT",
               "monitoring_custom_endpoint": "GOOGLE_MONITORING_CUSTOM_ENDPOINT",
               "project": "GOOGLE_PROJECT", "region": "GOOGLE_REGION", "access_token": "GOOGLE_OAUTH_ACCESS_TOKEN"}


class Failed(Exception):
    pass


class GoogleStandIn(Provider):
    def __init__(self):
        self.settings: dict = {}

    def get_model_prefix(self) -> str:
        return "google_"

    def full_name(self) -> str:
        return "registry.terraform.io/hashicorp/google"

    def get_provider_schema(self, diags) -> Schema:
        return Schema(version=0, attributes=[attr(name, _S, kind="optional") for name in ENVIRONMENT])

    def validate_config(self, diags, config) -> None:
        pass

    def configure_provider(self, diags, config) -> None:
        self.settings = {k: config.get(k) or os.environ.get(v) for k, v in ENVIRONMENT.items()}
        for key in ("storage_custom_endpoint", "vertex_ai_custom_endpoint"):  # the registry ones: when used
            if not self.settings[key]:
                diags.add_error(f"the stand-in google provider needs {key} (or ${ENVIRONMENT[key]})",
                                "It talks to local emulators only.")

    def get_data_sources(self) -> list:
        return [ProjectData]

    def get_resources(self) -> list:
        return [StorageBucket, StorageBucketObject, VertexAiEndpoint, VertexAiDeploymentResourcePool,
                ArtifactRegistryRepository, ArtifactRegistryRepositoryIamMember, BigqueryDataset,
                MonitoringAlertPolicy]

    def call(self, method: str, url: str, *, body=None, data: bytes | None = None, params=None) -> dict | None:
        import requests

        headers = {"Authorization": f"Bearer {self.settings.get('access_token') or 'none'}"}
        response = requests.request(method, url, json=body if data is None else None, data=data, params=params,
                                    headers=headers, timeout=120)
        if response.status_code == 404 and method == "GET":
            return None
        if response.status_code >= 400:
            raise Failed(f"{method} {url}: HTTP {response.status_code}: {response.text[:400]}")
        return response.json() if response.content else {}

    def storage(self, path: str) -> str:
        return self.settings["storage_custom_endpoint"].rstrip("/") + "/" + path

    def upload(self, path: str) -> str:
        # The JSON API's media upload sits beside it: .../upload/storage/v1/...
        return re.sub(r"/storage/v1/?$", "", self.settings["storage_custom_endpoint"].rstrip("/")) + "/upload/storage/v1/" + path

    def vertex(self, path: str) -> str:
        return self.settings["vertex_ai_custom_endpoint"].rstrip("/") + "/" + path

    def endpoint(self, key: str, path: str) -> str:
        if not self.settings.get(key):
            raise Failed(f"the stand-in google provider needs {key} (or ${ENVIRONMENT[key]}) for this resource")
        return self.settings[key].rstrip("/") + "/" + path

    def wait(self, op: dict) -> dict:
        while not op.get("done"):
            time.sleep(0.2)
            op = self.call("GET", self.vertex(op["name"]))
        if "error" in op:
            raise Failed(f"operation {op['name']}: {op['error']}")
        return op.get("response") or {}


class _Standin(Resource):
    def __init__(self, provider):
        self.provider = provider

    def run(self, ctx, work, *args):
        try:
            return work(*args)
        except Failed as error:
            ctx.diagnostics.add_error(str(error), "")
            return None

    def update(self, ctx, current, planned):
        return self.run(ctx, self._update, current, planned)

    def _update(self, current, planned):
        raise Failed(f"{self.get_name()}: in-place updates of these attributes are not stood in for")


def _single(name: str, *attributes: Attribute) -> SingleBlock:
    return SingleBlock(name, Block(attributes=list(attributes)))


class StorageBucket(_Standin):
    @classmethod
    def get_name(cls):
        return "storage_bucket"

    @classmethod
    def get_schema(cls):
        return Schema(version=0, attributes=[
            attr("name", _S, kind="required", replace=True), attr("location", _S, kind="required", replace=True),
            attr("project", _S, kind="optional+computed", replace=True), attr("force_destroy", _B, kind="optional"),
            attr("labels", Map(_S), kind="optional"), attr("public_access_prevention", _S, kind="optional+computed"),
            attr("uniform_bucket_level_access", _B, kind="optional+computed"), attr("id", _S, kind="computed"),
            attr("url", _S, kind="computed"),
        ], block_types=[
            _single("versioning", attr("enabled", _B, kind="required")),
            _single("logging", attr("log_bucket", _S, kind="required"), attr("log_object_prefix", _S, kind="optional")),
            _single("encryption", attr("default_kms_key_name", _S, kind="required")),
        ])

    def _state(self, found: dict, planned: dict) -> dict:
        return {**planned, "id": found["name"], "url": f"gs://{found['name']}",
                "project": planned.get("project") if known(planned.get("project")) else self.provider.settings["project"],
                "location": planned["location"], "labels": found.get("labels") or planned.get("labels"),
                "public_access_prevention": planned.get("public_access_prevention") or "inherited",
                "uniform_bucket_level_access": bool(planned.get("uniform_bucket_level_access"))}

    def create(self, ctx, planned):
        def work():
            body = {"name": planned["name"], "location": planned["location"], "labels": planned.get("labels") or {},
                    "versioning": {"enabled": bool((planned.get("versioning") or {}).get("enabled"))},
                    "iamConfiguration": {"uniformBucketLevelAccess": {
                        "enabled": bool(planned.get("uniform_bucket_level_access"))}}}
            found = self.provider.call("POST", self.provider.storage("b"), body=body,
                                       params={"project": planned.get("project") or self.provider.settings["project"]})
            return self._state(found, planned)
        return self.run(ctx, work)

    def read(self, ctx, current):
        def work():
            found = self.provider.call("GET", self.provider.storage(f"b/{current['name']}"))
            return None if found is None else self._state(found, current)
        return self.run(ctx, work)

    def delete(self, ctx, current):
        def work():
            # Cloud Storage refuses to delete a bucket that holds objects (409), and these never
            # go (deletion_policy ABANDON): the artifacts outlive the stack.
            objects = self.provider.call("GET", self.provider.storage(f"b/{current['name']}/o")) or {}
            if objects.get("items") and not current.get("force_destroy"):
                raise Failed(f"Error trying to delete bucket {current['name']} containing objects without "
                             "`force_destroy` set to true")
            self.provider.call("DELETE", self.provider.storage(f"b/{current['name']}"))
        return self.run(ctx, work)


class StorageBucketObject(_Standin):
    @classmethod
    def get_name(cls):
        return "storage_bucket_object"

    @classmethod
    def get_schema(cls):
        return Schema(version=0, attributes=[
            attr("name", _S, kind="required", replace=True), attr("bucket", _S, kind="required", replace=True),
            attr("source", _S, kind="optional", replace=True), attr("deletion_policy", _S, kind="optional"),
            attr("md5hash", _S, kind="computed"), attr("id", _S, kind="computed"),
        ])

    def create(self, ctx, planned):
        def work():
            data = Path(planned["source"]).read_bytes()
            found = self.provider.call("POST", self.provider.upload(f"b/{planned['bucket']}/o"), data=data,
                                       params={"uploadType": "media", "name": planned["name"]})
            return {**planned, "md5hash": found.get("md5Hash"), "id": f"{planned['bucket']}-{planned['name']}"}
        return self.run(ctx, work)

    def _object(self, state: dict) -> str:
        from urllib.parse import quote

        return self.provider.storage(f"b/{state['bucket']}/o/{quote(state['name'], safe='')}")

    def read(self, ctx, current):
        def work():
            found = self.provider.call("GET", self._object(current))
            return None if found is None else {**current, "md5hash": found.get("md5Hash")}
        return self.run(ctx, work)

    def delete(self, ctx, current):
        if current.get("deletion_policy") == "ABANDON":
            return None  # the object stays in the bucket: only forgotten

        def work():
            self.provider.call("DELETE", self._object(current))
        return self.run(ctx, work)


class VertexAiEndpoint(_Standin):
    @classmethod
    def get_name(cls):
        return "vertex_ai_endpoint"

    @classmethod
    def get_schema(cls):
        return Schema(version=0, attributes=[
            attr("name", _S, kind="required", replace=True), attr("display_name", _S, kind="required"),
            attr("description", _S, kind="optional"), attr("location", _S, kind="required", replace=True),
            attr("region", _S, kind="optional", replace=True), attr("project", _S, kind="optional+computed", replace=True),
            attr("labels", Map(_S), kind="optional"), attr("id", _S, kind="computed"),
        ], block_types=[_single("encryption_spec", attr("kms_key_name", _S, kind="required")),
                        SingleBlock("predict_request_response_logging_config", Block(
                            attributes=[attr("enabled", _B, kind="optional"),
                                        attr("sampling_rate", Number(), kind="optional")],
                            block_types=[_single("bigquery_destination", attr("output_uri", _S, kind="optional"))]))])

    def _path(self, state: dict) -> str:
        project = state.get("project") if known(state.get("project")) else self.provider.settings["project"]
        return f"projects/{project}/locations/{state['location']}/endpoints/{state['name']}"

    @staticmethod
    def _logging_to_api(config: dict | None) -> dict:
        if not config:
            return {}
        rate = config.get("sampling_rate")
        out = {"enabled": bool(config.get("enabled")), "samplingRate": None if rate is None else float(rate)}
        if (config.get("bigquery_destination") or {}).get("output_uri"):
            out["bigqueryDestination"] = {"outputUri": config["bigquery_destination"]["output_uri"]}
        return {k: v for k, v in out.items() if v is not None}

    @staticmethod
    def _logging_from_api(found: dict, prior: dict) -> dict | None:
        config = found.get("predictRequestResponseLoggingConfig")
        if not config or (not config.get("enabled") and not prior.get("predict_request_response_logging_config")):
            return None  # off, as a config without the block says
        destination = config.get("bigqueryDestination")
        return {"enabled": bool(config.get("enabled")), "sampling_rate": config.get("samplingRate"),
                "bigquery_destination": {"output_uri": destination.get("outputUri")} if destination else None}

    def _state(self, found: dict, prior: dict) -> dict:
        return {**prior, "display_name": found.get("displayName"), "description": found.get("description"),
                "predict_request_response_logging_config": self._logging_from_api(found, prior),
                "labels": found.get("labels") or (prior.get("labels") if prior.get("labels") == {} else None),
                "project": prior.get("project") if known(prior.get("project")) else self.provider.settings["project"],
                "id": self._path(prior)}

    def create(self, ctx, planned):
        def work():
            parent = self._path(planned).rsplit("/endpoints/", 1)[0]
            body = {"displayName": planned["display_name"], "description": planned.get("description") or "",
                    "labels": planned.get("labels") or {}}
            if planned.get("encryption_spec"):
                body["encryptionSpec"] = {"kmsKeyName": planned["encryption_spec"]["kms_key_name"]}
            if planned.get("predict_request_response_logging_config"):
                body["predictRequestResponseLoggingConfig"] = self._logging_to_api(
                    planned["predict_request_response_logging_config"])
            op = self.provider.call("POST", self.provider.vertex(f"{parent}/endpoints"), body=body,
                                    params={"endpointId": planned["name"]})
            self.provider.wait(op)
            return self._state(self.provider.call("GET", self.provider.vertex(self._path(planned))), planned)
        return self.run(ctx, work)

    def read(self, ctx, current):
        def work():
            found = self.provider.call("GET", self.provider.vertex(self._path(current)))
            return None if found is None else self._state(found, current)
        return self.run(ctx, work)

    def _update(self, current, planned):
        mask = [api for key, api in (("display_name", "displayName"), ("description", "description"),
                                     ("labels", "labels"),
                                     ("predict_request_response_logging_config", "predictRequestResponseLoggingConfig"))
                if planned.get(key) != current.get(key)]
        body = {"displayName": planned["display_name"], "description": planned.get("description") or "",
                "labels": planned.get("labels") or {},
                # Turned off: enabled false (resource_vertex_ai_endpoint.go sends the block as configured).
                "predictRequestResponseLoggingConfig": self._logging_to_api(
                    planned.get("predict_request_response_logging_config")) or {"enabled": False}}
        self.provider.call("PATCH", self.provider.vertex(self._path(current)), body=body,
                           params={"updateMask": ",".join(mask)})
        return self._state(self.provider.call("GET", self.provider.vertex(self._path(current))), planned)

    def delete(self, ctx, current):
        def work():
            self.provider.wait(self.provider.call("DELETE", self.provider.vertex(self._path(current))))
        return self.run(ctx, work)

    def import_(self, ctx, id):
        match = re.fullmatch(r"projects/([^/]+)/locations/([^/]+)/endpoints/([^/]+)", id)
        if not match:
            ctx.diagnostics.add_error(f"cannot import {id!r}", "Give projects/P/locations/L/endpoints/NAME.")
            return None
        project, location, name = match.groups()
        prior = {"project": project, "location": location, "name": name, "region": None, "encryption_spec": None,
                 "predict_request_response_logging_config": None}
        found = self.run(ctx, self.provider.call, "GET", self.provider.vertex(self._path(prior)))
        if not found:
            ctx.diagnostics.add_error(f"cannot import {id!r}: no such endpoint", "")
            return None
        return self._state(found, prior)



class SetBlock(NestedBlock):
    """A block written any number of times, as a set (`cleanup_policies { ... }`)."""

    def __init__(self, type_name: str, block: Block):
        super().__init__(type_name, NestMode.Set, block)

    def encode(self, value):
        from tf.provider import _encode_state_d

        return None if value is None else [_encode_state_d(self._amap(), self._bmap(), v, None) for v in value]

    def decode(self, value):
        from tf.provider import _decode_state
        from tf.utils import Diagnostics

        return None if value is None else [_decode_state(Diagnostics(), self._amap(), self._bmap(), v)[1] for v in value]

    def semantically_equal(self, a, b) -> bool:
        key = lambda items: sorted(repr(sorted(i.items())) for i in (items or []))  # noqa: E731
        return key(a) == key(b)


_POLICY_CONDITION = _single("condition", *(attr(n, _S, kind="optional") for n in ("tag_state", "older_than",
                                                                                "newer_than")),
                            *(attr(n, List(_S), kind="optional") for n in ("tag_prefixes", "version_name_prefixes",
                                                                          "package_name_prefixes")))
_MOST_RECENT = _single("most_recent_versions", attr("keep_count", Number(), kind="optional"),
                       attr("package_name_prefixes", List(_S), kind="optional"))


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _policies_to_api(policies) -> dict:
    out = {}
    for policy in policies or []:
        item = {"id": policy["id"], "action": policy["action"]}
        if policy.get("condition"):
            item["condition"] = {_camel(k): v for k, v in policy["condition"].items() if v not in (None, [])}
        if policy.get("most_recent_versions"):
            item["mostRecentVersions"] = {_camel(k): v for k, v in policy["most_recent_versions"].items()
                                          if v not in (None, [])}
        out[policy["id"]] = item
    return out


class ArtifactRegistryRepository(_Standin):
    @classmethod
    def get_name(cls):
        return "artifact_registry_repository"

    @classmethod
    def get_schema(cls):
        return Schema(version=0, attributes=[
            attr("repository_id", _S, kind="required", replace=True), attr("format", _S, kind="required", replace=True),
            attr("location", _S, kind="optional+computed", replace=True),
            attr("project", _S, kind="optional+computed", replace=True), attr("description", _S, kind="optional"),
            attr("labels", Map(_S), kind="optional"), attr("kms_key_name", _S, kind="optional", replace=True),
            attr("cleanup_policy_dry_run", _B, kind="optional"), attr("deletion_policy", _S, kind="optional"),
            attr("mode", _S, kind="optional+computed", replace=True), attr("id", _S, kind="computed"),
            attr("name", _S, kind="computed"), attr("create_time", _S, kind="computed"),
        ], block_types=[
            _single("docker_config", attr("immutable_tags", _B, kind="optional")),
            SetBlock("cleanup_policies", Block(attributes=[attr("id", _S, kind="required"),
                                                           attr("action", _S, kind="optional")],
                                               block_types=[_POLICY_CONDITION, _MOST_RECENT])),
        ])

    def _name(self, state: dict) -> str:
        project = state.get("project") if known(state.get("project")) else self.provider.settings["project"]
        location = state.get("location") if known(state.get("location")) else self.provider.settings["region"]
        return f"projects/{project}/locations/{location}/repositories/{state['repository_id']}"

    def _body(self, planned: dict) -> dict:
        body = {"format": planned["format"], "description": planned.get("description") or "",
                "labels": planned.get("labels") or {},
                "cleanupPolicies": _policies_to_api(planned.get("cleanup_policies")),
                "cleanupPolicyDryRun": bool(planned.get("cleanup_policy_dry_run"))}
        if planned.get("kms_key_name"):
            body["kmsKeyName"] = planned["kms_key_name"]
        if planned.get("docker_config"):
            body["dockerConfig"] = {"immutableTags": bool(planned["docker_config"].get("immutable_tags"))}
        return body

    def _state(self, found: dict, planned: dict) -> dict:
        name = found["name"]
        project, location = name.split("/")[1], name.split("/")[3]
        return {**planned, "project": planned.get("project") if known(planned.get("project")) else project,
                "location": planned.get("location") if known(planned.get("location")) else location,
                "mode": found.get("mode"), "name": planned["repository_id"], "id": name,
                "create_time": found.get("createTime")}

    def create(self, ctx, planned):
        def work():
            parent = self._name(planned).rsplit("/repositories/", 1)[0]
            op = self.provider.call("POST", self.provider.endpoint("artifact_registry_custom_endpoint",
                                                                   f"{parent}/repositories"),
                                    body=self._body(planned), params={"repositoryId": planned["repository_id"]})
            found = (op or {}).get("response") or self.provider.call(
                "GET", self.provider.endpoint("artifact_registry_custom_endpoint", self._name(planned)))
            return self._state(found, planned)
        return self.run(ctx, work)

    def read(self, ctx, current):
        def work():
            found = self.provider.call("GET", self.provider.endpoint("artifact_registry_custom_endpoint",
                                                                     self._name(current)))
            return None if found is None else self._state(found, current)
        return self.run(ctx, work)

    def _update(self, current, planned):
        mask = "description,labels,cleanupPolicies,cleanupPolicyDryRun,dockerConfig"
        self.provider.call("PATCH", self.provider.endpoint("artifact_registry_custom_endpoint", self._name(current)),
                           body=self._body(planned), params={"updateMask": mask})
        return {**planned, **{k: current[k] for k in ("id", "name", "create_time", "mode")}}

    def delete(self, ctx, current):
        if current.get("deletion_policy") == "ABANDON":
            return None  # the repository and its images stay: only forgotten

        def work():
            self.provider.call("DELETE", self.provider.endpoint("artifact_registry_custom_endpoint",
                                                                self._name(current)))
        return self.run(ctx, work)


class ArtifactRegistryRepositoryIamMember(_Standin):
    """One member of one role in the repository's IAM policy (read-modify-write with the
    policy's etag, as the real provider's iam_member does)."""

    @classmethod
    def get_name(cls):
        return "artifact_registry_repository_iam_member"

    @classmethod
    def get_schema(cls):
        return Schema(version=0, attributes=[
            attr("repository", _S, kind="required", replace=True), attr("role", _S, kind="required", replace=True),
            attr("member", _S, kind="required", replace=True), attr("location", _S, kind="optional+computed", replace=True),
            attr("project", _S, kind="optional+computed", replace=True), attr("etag", _S, kind="computed"),
            attr("id", _S, kind="computed"),
        ])

    def _name(self, state: dict) -> str:
        project = state.get("project") if known(state.get("project")) else self.provider.settings["project"]
        location = state.get("location") if known(state.get("location")) else self.provider.settings["region"]
        return f"projects/{project}/locations/{location}/repositories/{state['repository']}"

    def _policy(self, state: dict) -> dict:
        return self.provider.call("POST", self.provider.endpoint("artifact_registry_custom_endpoint",
                                                                 f"{self._name(state)}:getIamPolicy"), body={}) or {}

    def _set(self, state: dict, change) -> dict:
        policy = self._policy(state)
        bindings = change([dict(b) for b in policy.get("bindings") or []])
        stored = self.provider.call("POST", self.provider.endpoint("artifact_registry_custom_endpoint",
                                                                   f"{self._name(state)}:setIamPolicy"),
                                    body={"policy": {"bindings": bindings, "etag": policy.get("etag")}})
        return stored

    def create(self, ctx, planned):
        def add(bindings):
            for binding in bindings:
                if binding["role"] == planned["role"]:
                    binding["members"] = sorted(set(binding.get("members", [])) | {planned["member"]})
                    return bindings
            return bindings + [{"role": planned["role"], "members": [planned["member"]]}]

        def work():
            stored = self._set(planned, add)
            return {**planned, "etag": stored.get("etag"), "id": f"{self._name(planned)}/{planned['role']}/{planned['member']}",
                    "project": self._name(planned).split("/")[1], "location": self._name(planned).split("/")[3]}
        return self.run(ctx, work)

    def read(self, ctx, current):
        def work():
            policy = self._policy(current)
            held = any(b["role"] == current["role"] and current["member"] in b.get("members", [])
                       for b in policy.get("bindings") or [])
            return {**current, "etag": policy.get("etag")} if held else None
        return self.run(ctx, work)

    def delete(self, ctx, current):
        def drop(bindings):
            for binding in bindings:
                if binding["role"] == current["role"]:
                    binding["members"] = [m for m in binding.get("members", []) if m != current["member"]]
            return [b for b in bindings if b.get("members")]

        return self.run(ctx, lambda: self._set(current, drop) and None)


class ProjectData(DataSource):
    """`data "google_project"`: the project's number (Cloud Resource Manager v1 projects.get)."""

    def __init__(self, provider):
        self.provider = provider

    @classmethod
    def get_name(cls):
        return "project"

    @classmethod
    def get_schema(cls):
        return Schema(version=0, attributes=[
            attr("project_id", _S, kind="optional"), attr("number", _S, kind="computed"),
            attr("name", _S, kind="computed"), attr("id", _S, kind="computed"),
        ])

    def read(self, ctx, config):
        project = config.get("project_id") or self.provider.settings["project"]
        try:
            found = self.provider.call("GET", self.provider.endpoint("resource_manager_custom_endpoint",
                                                                     f"projects/{project}"))
        except Failed as error:
            ctx.diagnostics.add_error(str(error), "")
            return None
        return {**config, "project_id": project, "number": found["projectNumber"], "name": found.get("name"),
                "id": f"projects/{project}"}


def _camel_keys(value):
    """A block's state (snake_case, nulls) as the API's JSON (camelCase, absent)."""
    if isinstance(value, dict):
        return {_camel(k): _camel_keys(v) for k, v in value.items() if v not in (None, [], {})}
    if isinstance(value, list):
        return [_camel_keys(v) for v in value]
    return value


def _snake(name: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def _snake_keys(value, template):
    """The API's JSON back as a block's state, with the keys `template` (the planned state) has."""
    if isinstance(template, dict):
        value = value if isinstance(value, dict) else {}
        return {k: _snake_keys(value.get(_camel(k)), t) for k, t in template.items()}
    if isinstance(template, list) and template and isinstance(template[0], dict):
        return [_snake_keys(v, template[0]) for v in (value or [])]
    if template is None and isinstance(value, (dict, list)):
        return _snake_all(value)
    return value


def _snake_all(value):
    if isinstance(value, dict):
        return {_snake(k): _snake_all(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_snake_all(v) for v in value]
    return value


class VertexAiDeploymentResourcePool(_Standin):
    """Every attribute forces a new pool (the real provider's schema: ForceNew throughout)."""

    @classmethod
    def get_name(cls):
        return "vertex_ai_deployment_resource_pool"

    @classmethod
    def get_schema(cls):
        _N = Number()
        machine = _single("machine_spec", attr("machine_type", _S, kind="optional", replace=True),
                          attr("accelerator_type", _S, kind="optional", replace=True),
                          attr("accelerator_count", _N, kind="optional", replace=True))
        metrics = SetBlock("autoscaling_metric_specs", Block(attributes=[
            attr("metric_name", _S, kind="required", replace=True), attr("target", _N, kind="optional", replace=True)]))
        return Schema(version=0, attributes=[
            attr("name", _S, kind="required", replace=True), attr("region", _S, kind="optional+computed", replace=True),
            attr("project", _S, kind="optional+computed", replace=True), attr("deletion_policy", _S, kind="optional"),
            attr("id", _S, kind="computed"), attr("create_time", _S, kind="computed"),
        ], block_types=[SingleBlock("dedicated_resources", Block(attributes=[
            attr("min_replica_count", _N, kind="required", replace=True),
            attr("max_replica_count", _N, kind="optional", replace=True)], block_types=[machine, metrics]))])

    def _name(self, state: dict) -> str:
        project = state.get("project") if known(state.get("project")) else self.provider.settings["project"]
        region = state.get("region") if known(state.get("region")) else self.provider.settings["region"]
        return f"projects/{project}/locations/{region}/deploymentResourcePools/{state['name']}"

    def _state(self, found: dict, prior: dict) -> dict:
        name = self._name(prior)
        return {**prior, "project": name.split("/")[1], "region": name.split("/")[3], "id": name,
                "create_time": found.get("createTime"),
                "dedicated_resources": _snake_keys(found.get("dedicatedResources"), prior.get("dedicated_resources"))}

    def create(self, ctx, planned):
        def work():
            parent = self._name(planned).rsplit("/deploymentResourcePools/", 1)[0]
            body = {"deploymentResourcePoolId": planned["name"],
                    "deploymentResourcePool": {"dedicatedResources": _camel_keys(planned.get("dedicated_resources"))}}
            self.provider.wait(self.provider.call("POST", self.provider.vertex(f"{parent}/deploymentResourcePools"),
                                                  body=body))
            return self._state(self.provider.call("GET", self.provider.vertex(self._name(planned))), planned)
        return self.run(ctx, work)

    def read(self, ctx, current):
        def work():
            found = self.provider.call("GET", self.provider.vertex(self._name(current)))
            return None if found is None else self._state(found, current)
        return self.run(ctx, work)

    def delete(self, ctx, current):
        if current.get("deletion_policy") == "ABANDON":
            return None

        def work():
            self.provider.wait(self.provider.call("DELETE", self.provider.vertex(self._name(current))))
        return self.run(ctx, work)


class BigqueryDataset(_Standin):
    @classmethod
    def get_name(cls):
        return "bigquery_dataset"

    @classmethod
    def get_schema(cls):
        return Schema(version=0, attributes=[
            attr("dataset_id", _S, kind="required", replace=True), attr("project", _S, kind="optional+computed", replace=True),
            attr("location", _S, kind="optional+computed", replace=True), attr("description", _S, kind="optional"),
            attr("friendly_name", _S, kind="optional"), attr("labels", Map(_S), kind="optional"),
            attr("delete_contents_on_destroy", _B, kind="optional"), attr("deletion_policy", _S, kind="optional"),
            attr("id", _S, kind="computed"),
            attr("etag", _S, kind="computed"), attr("self_link", _S, kind="computed"),
            attr("creation_time", Number(), kind="computed"),
        ], block_types=[_single("default_encryption_configuration", attr("kms_key_name", _S, kind="required"))])

    def _path(self, state: dict) -> str:
        project = state.get("project") if known(state.get("project")) else self.provider.settings["project"]
        return f"projects/{project}/datasets/{state['dataset_id']}"

    def _body(self, planned: dict) -> dict:
        body = {"description": planned.get("description"), "friendlyName": planned.get("friendly_name"),
                "labels": planned.get("labels") or {}}
        key = planned.get("default_encryption_configuration")
        body["defaultEncryptionConfiguration"] = {"kmsKeyName": key["kms_key_name"]} if key else None
        return body

    def _state(self, found: dict, prior: dict) -> dict:
        key = (found.get("defaultEncryptionConfiguration") or {}).get("kmsKeyName")
        return {**prior, "project": self._path(prior).split("/")[1], "location": found.get("location"),
                "description": found.get("description"), "friendly_name": found.get("friendlyName"),
                "labels": found.get("labels") or (prior.get("labels") if prior.get("labels") == {} else None),
                "default_encryption_configuration": {"kms_key_name": key} if key else None,
                "id": self._path(prior), "etag": found.get("etag"), "self_link": found.get("selfLink"),
                "creation_time": int(found.get("creationTime") or 0)}

    def create(self, ctx, planned):
        def work():
            project = self._path(planned).split("/")[1]
            body = {**{k: v for k, v in self._body(planned).items() if v is not None},
                    "datasetReference": {"datasetId": planned["dataset_id"], "projectId": project},
                    "location": planned.get("location") if known(planned.get("location")) else "US"}
            found = self.provider.call("POST", self.provider.endpoint("big_query_custom_endpoint",
                                                                      f"projects/{project}/datasets"), body=body)
            return self._state(found, planned)
        return self.run(ctx, work)

    def read(self, ctx, current):
        def work():
            found = self.provider.call("GET", self.provider.endpoint("big_query_custom_endpoint", self._path(current)))
            return None if found is None else self._state(found, current)
        return self.run(ctx, work)

    def _update(self, current, planned):
        found = self.provider.call("PATCH", self.provider.endpoint("big_query_custom_endpoint", self._path(current)),
                                   body=self._body(planned))
        return self._state(found, planned)

    def delete(self, ctx, current):
        if current.get("deletion_policy") == "ABANDON":
            return None  # the dataset and its tables stay: only forgotten

        def work():
            self.provider.call("DELETE", self.provider.endpoint("big_query_custom_endpoint", self._path(current)),
                               params={"deleteContents": "true" if current.get("delete_contents_on_destroy") else "false"})
        return self.run(ctx, work)


_AGGREGATION = Block(attributes=[attr("alignment_period", _S, kind="optional"),
                                 attr("per_series_aligner", _S, kind="optional"),
                                 attr("cross_series_reducer", _S, kind="optional"),
                                 attr("group_by_fields", List(_S), kind="optional")])
_THRESHOLD = SingleBlock("condition_threshold", Block(attributes=[
    attr("filter", _S, kind="optional"), attr("denominator_filter", _S, kind="optional"),
    attr("comparison", _S, kind="required"), attr("duration", _S, kind="required"),
    attr("threshold_value", Number(), kind="optional"), attr("evaluation_missing_data", _S, kind="optional"),
], block_types=[SetBlock("aggregations", _AGGREGATION), SetBlock("denominator_aggregations", _AGGREGATION),
                _single("trigger", attr("count", Number(), kind="optional"), attr("percent", Number(), kind="optional"))]))


class MonitoringAlertPolicy(_Standin):
    """Conditions are stood in for as threshold conditions only (what the stacks declare)."""

    @classmethod
    def get_name(cls):
        return "monitoring_alert_policy"

    @classmethod
    def get_schema(cls):
        return Schema(version=0, attributes=[
            attr("display_name", _S, kind="required"), attr("combiner", _S, kind="required"),
            attr("enabled", _B, kind="optional"), attr("notification_channels", List(_S), kind="optional"),
            attr("user_labels", Map(_S), kind="optional"), attr("severity", _S, kind="optional"),
            attr("project", _S, kind="optional+computed", replace=True), attr("name", _S, kind="computed"),
            attr("id", _S, kind="computed"),
        ], block_types=[
            SetBlock("conditions", Block(attributes=[attr("display_name", _S, kind="required")],
                                         block_types=[_THRESHOLD])),
            _single("documentation", attr("content", _S, kind="optional"), attr("mime_type", _S, kind="optional"),
                    attr("subject", _S, kind="optional")),
        ])

    def _project(self, state: dict) -> str:
        return state.get("project") if known(state.get("project")) else self.provider.settings["project"]

    def _body(self, planned: dict) -> dict:
        conditions = planned.get("conditions") or []
        return _camel_keys({"display_name": planned["display_name"], "combiner": planned["combiner"],
                            "enabled": planned.get("enabled") if planned.get("enabled") is not None else True,
                            "notification_channels": planned.get("notification_channels"),
                            "user_labels": planned.get("user_labels"), "severity": planned.get("severity"),
                            "documentation": planned.get("documentation"), "conditions": conditions})

    def _state(self, found: dict, prior: dict) -> dict:
        planned = {c["display_name"]: c for c in prior.get("conditions") or []}
        conditions = [_snake_keys({k: v for k, v in c.items() if k != "name"}, planned.get(c.get("displayName")))
                      for c in found.get("conditions") or []] if planned else None
        return {**prior, "project": self._project(prior), "name": found["name"], "id": found["name"],
                "display_name": found.get("displayName"), "combiner": found.get("combiner"),
                "enabled": found.get("enabled") if prior.get("enabled") is not None else prior.get("enabled"),
                "notification_channels": found.get("notificationChannels") or prior.get("notification_channels"),
                "user_labels": found.get("userLabels") or prior.get("user_labels"),
                "conditions": conditions or prior.get("conditions")}

    def create(self, ctx, planned):
        def work():
            found = self.provider.call("POST", self.provider.endpoint(
                "monitoring_custom_endpoint", f"v3/projects/{self._project(planned)}/alertPolicies"),
                body=self._body(planned))
            return self._state(found, planned)
        return self.run(ctx, work)

    def read(self, ctx, current):
        def work():
            found = self.provider.call("GET", self.provider.endpoint("monitoring_custom_endpoint", f"v3/{current['name']}"))
            return None if found is None else self._state(found, current)
        return self.run(ctx, work)

    def _update(self, current, planned):
        mask = "displayName,combiner,enabled,notificationChannels,userLabels,severity,documentation,conditions"
        found = self.provider.call("PATCH", self.provider.endpoint("monitoring_custom_endpoint", f"v3/{current['name']}"),
                                   body=self._body(planned), params={"updateMask": mask})
        return self._state(found, {**planned, "name": current["name"]})

    def delete(self, ctx, current):
        def work():
            self.provider.call("DELETE", self.provider.endpoint("monitoring_custom_endpoint", f"v3/{current['name']}"))
        return self.run(ctx, work)
