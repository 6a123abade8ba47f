"""The stand-in google provider: its provider block (the real provider's custom endpoints,
project, region and token, each also read from the real provider's variable), the resources
and data sources it serves, and the HTTP calls and operation polling they make.

Attribute names and kinds follow the google provider 8.x schema for what the stacks set; REST
calls follow each service's API as the real provider makes them (the resource modules: storage,
vertex, registry, bigquery, monitoring, project).
"""

from __future__ import annotations

import os
import re
import time

from tf.iface import Provider
from tf.schema import Schema
from tf.types import String

from provider.common import attr
from rehearsal.google_standin.base import Failed
from rehearsal.google_standin.bigquery import BigqueryDataset
from rehearsal.google_standin.monitoring import MonitoringAlertPolicy
from rehearsal.google_standin.project import ProjectData
from rehearsal.google_standin.registry import ArtifactRegistryRepository, ArtifactRegistryRepositoryIamMember
from rehearsal.google_standin.storage import StorageBucket, StorageBucketObject
from rehearsal.google_standin.vertex import VertexAiDeploymentResourcePool, VertexAiEndpoint

# The real provider's variables for these settings (registry docs, "Provider Reference").
ENVIRONMENT = {
    "storage_custom_endpoint": "GOOGLE_STORAGE_CUSTOM_ENDPOINT",
    "vertex_ai_custom_endpoint": "GOOGLE_VERTEX_AI_CUSTOM_ENDPOINT",
    "artifact_registry_custom_endpoint": "GOOGLE_ARTIFACT_REGISTRY_CUSTOM_ENDPOINT",
    "resource_manager_custom_endpoint": "GOOGLE_RESOURCE_MANAGER_CUSTOM_ENDPOINT",
    "big_query_custom_endpoint": "GOOGLE_BIG_QUERY_CUSTOM_ENDPOINT",
    "monitoring_custom_endpoint": "GOOGLE_MONITORING_CUSTOM_ENDPOINT",
    "project": "GOOGLE_PROJECT",
    "region": "GOOGLE_REGION",
    "access_token": "GOOGLE_OAUTH_ACCESS_TOKEN",
}


class GoogleStandIn(Provider):
    """`provider "google"`: settings from its block or the real provider's variables; the HTTP client."""

    def __init__(self) -> None:
        self.settings: dict = {}

    def get_model_prefix(self) -> str:
        return "google_"

    def full_name(self) -> str:
        return "registry.terraform.io/hashicorp/google"

    def get_provider_schema(self, diags) -> Schema:
        return Schema(version=0, attributes=[attr(name, String(), kind="optional") for name in ENVIRONMENT])

    def validate_config(self, diags, config) -> None:
        pass

    def configure_provider(self, diags, config) -> None:
        self.settings = {k: config.get(k) or os.environ.get(v) for k, v in ENVIRONMENT.items()}
        for key in ("storage_custom_endpoint", "vertex_ai_custom_endpoint"):  # the registry ones: when used
            if not self.settings[key]:
                diags.add_error(
                    f"the stand-in google provider needs {key} (or ${ENVIRONMENT[key]})",
                    "It talks to local emulators only.",
                )

    def get_data_sources(self) -> list:
        return [ProjectData]

    def get_resources(self) -> list:
        return [
            StorageBucket,
            StorageBucketObject,
            VertexAiEndpoint,
            VertexAiDeploymentResourcePool,
            ArtifactRegistryRepository,
            ArtifactRegistryRepositoryIamMember,
            BigqueryDataset,
            MonitoringAlertPolicy,
        ]

    def call(self, method: str, url: str, *, body=None, data: bytes | None = None, params=None) -> dict | None:
        import requests

        headers = {"Authorization": f"Bearer {self.settings.get('access_token') or 'none'}"}
        response = requests.request(
            method, url, json=body if data is None else None, data=data, params=params, headers=headers, timeout=120
        )
        if response.status_code == 404 and method == "GET":
            return None
        if response.status_code >= 400:
            raise Failed(f"{method} {url}: HTTP {response.status_code}: {response.text[:400]}")
        return response.json() if response.content else {}

    def storage(self, path: str) -> str:
        return self.settings["storage_custom_endpoint"].rstrip("/") + "/" + path

    def upload(self, path: str) -> str:
        # The JSON API's media upload sits beside it: .../upload/storage/v1/...
        base = re.sub(r"/storage/v1/?$", "", self.settings["storage_custom_endpoint"].rstrip("/"))
        return base + "/upload/storage/v1/" + path

    def vertex(self, path: str) -> str:
        return self.settings["vertex_ai_custom_endpoint"].rstrip("/") + "/" + path

    def endpoint(self, key: str, path: str) -> str:
        if not self.settings.get(key):
            raise Failed(f"the stand-in google provider needs {key} (or ${ENVIRONMENT[key]}) for this resource")
        return self.settings[key].rstrip("/") + "/" + path

    def wait(self, op: dict) -> dict:
        while not op.get("done"):
            time.sleep(0.2)
            polled = self.call("GET", self.vertex(op["name"]))
            if polled is None:
                raise Failed(f"operation {op['name']}: not found")
            op = polled
        if "error" in op:
            raise Failed(f"operation {op['name']}: {op['error']}")
        return op.get("response") or {}
