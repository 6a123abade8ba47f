"""The `eevertex` provider: its configuration schema and the resources it serves."""

from __future__ import annotations

import threading

from tf.iface import Config, Provider
from tf.schema import Attribute, Schema
from tf.types import Number, String, Unknown
from tf.utils import Diagnostics

from provider import NAME, SOURCE
from provider.client import Client, is_loopback_http

CREDENTIALS = ("application-default", "none")
DEFAULT_OPERATION_TIMEOUT = 1800


class EeVertexProvider(Provider):
    def __init__(self):
        self.client: Client | None = None
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
                Attribute("api_endpoint", String(), optional=True, description=(
                    "Base URL of the Vertex AI API. Default `https://{region}-aiplatform.googleapis.com`, "
                    "the region taken from each resource. `http://127.0.0.1:PORT` for the local emulator.")),
                Attribute("credentials", String(), optional=True, description=(
                    "`application-default` (default: Application Default Credentials) or `none` (no "
                    "Authorization header; only with a loopback http `api_endpoint`).")),
                Attribute("operation_timeout_seconds", Number(), optional=True, description=(
                    f"Longest wait for one long-running operation (default {DEFAULT_OPERATION_TIMEOUT}).")),
            ],
        )

    def validate_config(self, diags: Diagnostics, config: Config) -> None:
        credentials = config.get("credentials")
        endpoint = config.get("api_endpoint")
        if credentials not in (None, Unknown) and credentials not in CREDENTIALS:
            diags.add_error(
                f"credentials = {credentials!r} is not allowed",
                f"Allowed values: {', '.join(CREDENTIALS)}.", path=["credentials"])
        if endpoint not in (None, Unknown) and not str(endpoint).startswith(("https://", "http://")):
            diags.add_error(
                f"api_endpoint = {endpoint!r} is not a URL",
                "Give https://HOST (or http://127.0.0.1:PORT for the local emulator).", path=["api_endpoint"])
        if credentials == "none" and endpoint is not Unknown and not (endpoint and is_loopback_http(endpoint)):
            diags.add_error(
                "credentials = \"none\" needs a loopback api_endpoint",
                f"Requests without credentials go only to a local emulator (http://127.0.0.1:PORT); "
                f"api_endpoint is {endpoint!r}.", path=["credentials"])
        timeout = config.get("operation_timeout_seconds")
        if timeout not in (None, Unknown) and not timeout > 0:
            diags.add_error(
                f"operation_timeout_seconds = {timeout} must be > 0", "", path=["operation_timeout_seconds"])

    def configure_provider(self, diags: Diagnostics, config: Config) -> None:
        self.validate_config(diags, config)
        self.client = Client(
            api_endpoint=config.get("api_endpoint") or None,
            credentials=config.get("credentials") or "application-default",
            operation_timeout=float(config.get("operation_timeout_seconds") or DEFAULT_OPERATION_TIMEOUT),
        )

    def get_data_sources(self) -> list:
        return []

    def get_resources(self) -> list:
        from provider.deployment import Deployment
        from provider.model import Model
        from provider.traffic_split import TrafficSplit

        return [Model, Deployment, TrafficSplit]
