"""The model upload: terraform_data resources that hold each model version's full desired
state and drive idempotent hooks, since the google provider cannot upload a custom model."""

from __future__ import annotations

from cdktn import TerraformOutput, TerraformResource
from constructs import Construct

from stacks.base import BaseStack, hook
from stacks.wiring import ModelStackConfig

# What makes a model version: any change uploads a new one.
REPLACE_ON = ("project", "region", "model_id", "version_alias", "artifact_uri", "artifact_sha256", "kms_key")


def model_resource_id(spec: dict) -> str:
    """Terraform name of one model version: the model ID and spec alias, so the previous
    artifact keeps its address while a canary runs."""
    return f"model_{spec['model_id']}_{spec['version_alias']}".replace("-", "_")


class ModelStack(BaseStack):
    def __init__(self, scope: Construct, id: str, *, config: ModelStackConfig) -> None:
        super().__init__(scope, id, backend=config.backend)
        for spec in config.models:
            model = TerraformResource(
                self,
                model_resource_id(spec),
                terraform_resource_type="terraform_data",
                provisioners=[
                    hook("model-upload", config.hooks),
                    hook("model-delete", config.hooks, when="destroy"),
                ],
            )
            model.add_override("input", spec)
            model.add_override("triggers_replace", {k: spec[k] for k in REPLACE_ON if k in spec})
        TerraformOutput(
            self,
            "model_version",
            value=config.models[0]["model"],
            description="Vertex AI model version (model ID @ spec alias) of the current artifact.",
        )
        TerraformOutput(
            self,
            "earth_engine_bands",
            value=config.bands,
            description="Bands Earth Engine sends (inputProperties order) and gets back (outputBands).",
        )
