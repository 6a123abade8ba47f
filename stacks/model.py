"""The model upload: one `eevertex_model` per model version kept (the current artifact,
and the previous one while a canary splits traffic), all versions of one parent model."""

from __future__ import annotations

from cdktn import TerraformOutput
from constructs import Construct

from stacks.base import BaseStack, vertex_provider
from stacks.vertex import Model
from stacks.wiring import ModelStackConfig


class ModelStack(BaseStack):
    def __init__(self, scope: Construct, id: str, *, config: ModelStackConfig) -> None:
        super().__init__(scope, id, backend=config.backend)
        vertex_provider(self, config.provider)
        self.models = []
        for version in config.models:
            model = Model(self, version.resource_id, **version.attributes())
            if version.import_id:
                model.import_from(version.import_id)
            self.models.append(model)
        current = config.models[0]
        TerraformOutput(
            self,
            "model_version",
            value=self.models[0].id_,
            description=f"Vertex AI model version of the current artifact ({current.version_name}).",
        )
