"""The model upload: one `eevertex_model` per model version kept (the current artifact,
and the previous one while a canary splits traffic), all versions of one parent model; and
before them, our serving images they run, pushed by digest into the target's registry
(`eevertex_image`), so that Vertex AI finds each image when it ingests it at the upload."""

from __future__ import annotations

from cdktn import TerraformOutput
from constructs import Construct

from stacks.base import BaseStack, vertex_provider
from stacks.vertex import Image, Model
from stacks.wiring import ModelStackConfig


class ModelStack(BaseStack):
    def __init__(self, scope: Construct, id: str, *, config: ModelStackConfig) -> None:
        super().__init__(scope, id, backend=config.backend)
        vertex_provider(self, config.provider)
        images = {spec.resource_id: Image(self, spec.resource_id, **spec.attributes()) for spec in config.images}
        self.models = []
        for version in config.models:
            pushed = [images[version.image_resource_id]] if version.image_resource_id else None
            model = Model(self, version.resource_id, **version.attributes(), depends_on=pushed)
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
