"""What every stack shares: its state backend, and the `eevertex` provider block."""

from __future__ import annotations

from cdktn import GcsBackend, LocalBackend, TerraformStack
from constructs import Construct

from stacks.environment import Backend, VertexProviderConfig
from stacks.vertex import EeVertexProvider


class BaseStack(TerraformStack):
    def __init__(self, scope: Construct, id: str, *, backend: Backend) -> None:
        super().__init__(scope, id)
        if backend.gcs_bucket:
            GcsBackend(self, bucket=backend.gcs_bucket, prefix=backend.gcs_prefix)
        else:
            LocalBackend(self, path=backend.local_path)


def vertex_provider(stack: TerraformStack, config: VertexProviderConfig) -> EeVertexProvider:
    return EeVertexProvider(
        stack,
        "eevertex",
        api_endpoint=config.api_endpoint,
        credentials=config.credentials,
        allow_unlisted_regions=config.allow_unlisted_regions,
        registry_endpoint=config.registry_endpoint,
        storage_endpoint=config.storage_endpoint,
    )
