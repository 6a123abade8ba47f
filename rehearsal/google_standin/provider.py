"""The stand-in google provider: provider block, HTTP, and its three resources.

Attribute names and kinds follow the google provider 8.x schema for what the stacks set
(registry docs of google_storage_bucket, google_storage_bucket_object, google_vertex_ai_endpoint);
REST calls follow the Cloud Storage JSON API and Vertex AI v1, as the real provider makes them.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from tf.iface import Provider, Resource
from tf.schema import Attribute, Block, Schema
from tf.types import Bool, Map, String

from provider.common import SingleBlock, attr, known

_S, _B = String(), Bool()
# The real provider's variables for these settings (registry docs, "Provider Reference").
ENVIRONMENT = {"storage_custom_endpoint": "GOOGLE_STORAGE_CUSTOM_ENDPOINT",
               "vertex_ai_custom_endpoint": "GOOGLE_VERTEX_AI_CUSTOM_ENDPOINT", "project": "GOOGLE_PROJECT",
               "region": "GOOGLE_REGION", "access_token": "GOOGLE_OAUTH_ACCESS_TOKEN"}


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
        for key in ("storage_custom_endpoint", "vertex_ai_custom_endpoint"):
            if not self.settings[key]:
                diags.add_error(f"the stand-in google provider needs {key} (or ${ENVIRONMENT[key]})",
                                "It talks to local emulators only.")

    def get_data_sources(self) -> list:
        return []

    def get_resources(self) -> list:
        return [StorageBucket, StorageBucketObject, VertexAiEndpoint]

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
        ], block_types=[_single("encryption_spec", attr("kms_key_name", _S, kind="required"))])

    def _path(self, state: dict) -> str:
        project = state.get("project") if known(state.get("project")) else self.provider.settings["project"]
        return f"projects/{project}/locations/{state['location']}/endpoints/{state['name']}"

    def _state(self, found: dict, prior: dict) -> dict:
        return {**prior, "display_name": found.get("displayName"), "description": found.get("description"),
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
                                     ("labels", "labels")) if planned.get(key) != current.get(key)]
        body = {"displayName": planned["display_name"], "description": planned.get("description") or "",
                "labels": planned.get("labels") or {}}
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
        prior = {"project": project, "location": location, "name": name, "region": None, "encryption_spec": None}
        found = self.run(ctx, self.provider.call, "GET", self.provider.vertex(self._path(prior)))
        if not found:
            ctx.diagnostics.add_error(f"cannot import {id!r}: no such endpoint", "")
            return None
        return self._state(found, prior)

