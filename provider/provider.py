"""The `eevertex` provider: its configuration schema and the resources it serves."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from tf.iface import Config, Provider
from tf.schema import Attribute, Schema
from tf.types import Bool, Number, String, Unknown
from tf.utils import Diagnostics

from provider import NAME, SOURCE
from provider.client import Client, is_loopback_http

if TYPE_CHECKING:
    from provider.registry import Registry

CREDENTIALS = ("application-default", "none")
DEFAULT_OPERATION_TIMEOUT = 1800
# Provider settings a provider block leaves unset come from these (as the google provider's
# come from GOOGLE_*), so one synthesized stack runs against Google or the emulator unchanged.
ENVIRONMENT = {
    "api_endpoint": "EEVERTEX_API_ENDPOINT",
    "credentials": "EEVERTEX_CREDENTIALS",
    "allow_unlisted_regions": "EEVERTEX_ALLOW_UNLISTED_REGIONS",
    "registry_endpoint": "EEVERTEX_REGISTRY_ENDPOINT",
    "storage_endpoint": "EEVERTEX_STORAGE_ENDPOINT",
}


class EeVertexProvider(Provider):
    def __init__(self) -> None:
        self.client: Client | None = None
        self.registry: Registry | None = None
        self.allow_unlisted_regions = False
        # (endpoint, deployed model ID) a create adopted in this apply: see Deployment.delete.
        self.adopted: set[tuple[str, str]] = set()
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def lock(self, resource_name: str) -> threading.Lock:
        """One lock per Vertex AI resource: Terraform runs resources in parallel, and deleting
        two versions of one model (each checking which holds `default`) must not interleave."""
        with self._locks_guard:
            return self._locks.setdefault(resource_name, threading.Lock())

    def get_model_prefix(self) -> str:
        return f"{NAME}_"

    def full_name(self) -> str:
        return SOURCE

    def get_provider_schema(self, diags: Diagnostics) -> Schema:
        return Schema(
            version=0,
            attributes=[
                Attribute(
                    "api_endpoint",
                    String(),
                    optional=True,
                    description=(
                        "Base URL of the Vertex AI API. Default: $EEVERTEX_API_ENDPOINT, else "
                        "`https://{region}-aiplatform.googleapis.com`, the region taken from each resource. "
                        "`http://127.0.0.1:PORT` for the local emulator."
                    ),
                ),
                Attribute(
                    "credentials",
                    String(),
                    optional=True,
                    description=(
                        "Default: $EEVERTEX_CREDENTIALS, else `application-default` (Application Default "
                        "Credentials). Or the path of a key file (service account or authorized user), or `none` "
                        "(no Authorization header; only with a loopback http `api_endpoint`)."
                    ),
                ),
                Attribute(
                    "operation_timeout_seconds",
                    Number(),
                    optional=True,
                    description=(
                        f"Longest wait for one long-running operation (default {DEFAULT_OPERATION_TIMEOUT}); a "
                        "resource's `timeouts` block bounds a whole create, update or delete instead."
                    ),
                ),
                Attribute(
                    "allow_unlisted_regions",
                    Bool(),
                    optional=True,
                    description=(
                        "Accept regions missing from the list of Vertex AI prediction regions this provider "
                        "knows (config/regions.py: gcloud 528's list), e.g. a newer one."
                    ),
                ),
                Attribute(
                    "registry_endpoint",
                    String(),
                    optional=True,
                    description=(
                        "Base URL every `eevertex_image` is pushed to instead of `https://<its repository's host>`. "
                        "Default: $EEVERTEX_REGISTRY_ENDPOINT, else none. `http://127.0.0.1:PORT` for a local "
                        "registry standing in for Artifact Registry."
                    ),
                ),
                Attribute(
                    "storage_endpoint",
                    String(),
                    optional=True,
                    description=(
                        "Base URL of the Cloud Storage JSON API, which `eevertex_traffic_split` reads golden tiles "
                        "from. Default: $EEVERTEX_STORAGE_ENDPOINT, else `https://storage.googleapis.com`. "
                        "`http://127.0.0.1:PORT` for the local GCS emulator."
                    ),
                ),
            ],
        )

    def settings(self, config: Config) -> dict:
        """The provider block's values, each unset one from its environment variable."""
        values = {
            key: config.get(key)
            for key in (
                "api_endpoint",
                "credentials",
                "operation_timeout_seconds",
                "allow_unlisted_regions",
                "registry_endpoint",
                "storage_endpoint",
            )
        }
        for key, variable in ENVIRONMENT.items():
            if values[key] is None and os.environ.get(variable):
                values[key] = os.environ[variable]
        return values

    def validate_config(self, diags: Diagnostics, config: Config) -> None:
        values = self.settings(config)
        # Terraform validates the provider block before the resources that use it (same process).
        self.allow_unlisted_regions = values["allow_unlisted_regions"] in (True, "true")
        credentials, endpoint = values["credentials"], values["api_endpoint"]

        def where(key: str) -> str:
            return key if config.get(key) is not None else f"${ENVIRONMENT[key]}"

        if credentials not in (None, Unknown) and credentials not in CREDENTIALS and not os.path.isfile(credentials):
            diags.add_error(
                f"{where('credentials')} = {credentials!r} is not allowed",
                f"Allowed values: {', '.join(CREDENTIALS)}, or the path of an existing key file.",
                path=["credentials"],
            )
        if endpoint not in (None, Unknown) and not str(endpoint).startswith(("https://", "http://")):
            diags.add_error(
                f"{where('api_endpoint')} = {endpoint!r} is not a URL",
                "Give https://HOST (or http://127.0.0.1:PORT for the local emulator).",
                path=["api_endpoint"],
            )
        if credentials == "none" and endpoint is not Unknown and not (endpoint and is_loopback_http(endpoint)):
            diags.add_error(
                f'{where("credentials")} = "none" needs a loopback api_endpoint',
                f"Requests without credentials go only to a local emulator (http://127.0.0.1:PORT); "
                f"api_endpoint is {endpoint!r}.",
                path=["credentials"],
            )
        for key in ("registry_endpoint", "storage_endpoint"):
            url = values[key]
            if url not in (None, Unknown) and not str(url).startswith(("https://", "http://")):
                diags.add_error(
                    f"{where(key)} = {url!r} is not a URL", "Give https://HOST or http://127.0.0.1:PORT.", path=[key]
                )
        timeout = values["operation_timeout_seconds"]
        if timeout not in (None, Unknown) and not (isinstance(timeout, (int, float)) and timeout > 0):
            diags.add_error(
                f"operation_timeout_seconds = {timeout} must be > 0", "", path=["operation_timeout_seconds"]
            )

    def configure_provider(self, diags: Diagnostics, config: Config) -> None:
        self.validate_config(diags, config)
        values = self.settings(config)
        self.client = Client(
            api_endpoint=values["api_endpoint"] or None,
            credentials=values["credentials"] or "application-default",
            operation_timeout=float(values["operation_timeout_seconds"] or DEFAULT_OPERATION_TIMEOUT),
            storage_endpoint=values["storage_endpoint"] or None,
        )
        from provider.registry import Registry

        self.registry = Registry(values["registry_endpoint"] or None, self.client.access_token)

    def get_data_sources(self) -> list:
        from provider.model_version import ModelVersion
        from provider.traffic_split import TrafficSplitData

        return [ModelVersion, TrafficSplitData]

    def get_resources(self) -> list:
        from provider.deployment import Deployment
        from provider.image import Image
        from provider.model import Model
        from provider.traffic_split import TrafficSplit

        return [Image, Model, Deployment, TrafficSplit]
