"""The model upload: a terraform_data resource that holds the full desired model and
drives an idempotent hook, since the google provider cannot upload a custom model."""

from __future__ import annotations

from cdktf import TerraformOutput, TerraformResource
from constructs import Construct

from stacks.base import BaseStack, hook
from stacks.wiring import ModelStackConfig


class ModelStack(BaseStack):
    def __init__(self, scope: Construct, id: str, *, config: ModelStackConfig) -> None:
        super().__init__(scope, id, backend=config.backend)
        model = TerraformResource(
            self,
            "model",
            terraform_resource_type="terraform_data",
            provisioners=[
                hook("model-upload", config.hooks),
                hook("model-delete", config.hooks, when="destroy"),
            ],
            # The new model exists before the old one is let go.
            lifecycle={"create_before_destroy": True},
        )
        model.add_override("input", config.model_input)
        model.add_override("triggers_replace", {k: config.model_input[k] for k in config.replace_on})
        TerraformOutput(
            self,
            "model_version",
            value=config.model_input["model"],
            description="Vertex AI model version (model ID @ spec alias) that the deployment serves.",
        )
