"""`data "eevertex_model_version"`: one version of a Vertex AI model, by alias or version ID.

API: GetModel `GET models/M@ALIAS|M@VERSION` ([types] model_service.py GetModelRequest.name:
"a version ID or version alias"; no suffix: the `default` version).
"""

from __future__ import annotations

from tf.iface import ReadDataContext, State
from tf.types import List, Map, String
from tf.utils import Diagnostics

from config import rules
from provider.client import VertexError, report
from provider.common import PROJECT_REGION_DOC, ProviderDataSource, attr, known, rule, validate_common, with_project

_S = String()


class ModelVersion(ProviderDataSource):
    EXAMPLE = """
data "eevertex_model_version" "serving" {
  project  = "acme-geo-dev"
  region   = "us-central1"
  model_id = "landcover-torch"
  version  = "default"
}
"""

    NAME = "model_version"
    DESCRIPTION = "A Vertex AI model version, looked up by alias or version ID."
    ATTRIBUTES = [
        attr("project", _S, kind="required", doc=PROJECT_REGION_DOC["project"]),
        attr("region", _S, kind="required", doc=PROJECT_REGION_DOC["region"]),
        attr("model_id", _S, kind="required", doc="The parent model's ID (as gcloud prints it, e.g. 19 digits)."),
        attr(
            "version",
            _S,
            kind="optional",
            doc="A version alias (e.g. `default`, or the one an eevertex_model holds) or a version ID; "
            "default: `default`.",
        ),
        attr("id", _S, kind="computed", doc="`projects/P/locations/R/models/M@VERSION_ID`."),
        attr("version_id", _S, kind="computed", doc="The version's ID (`1`, `2`, ...)."),
        attr(
            "version_aliases",
            List(_S),
            kind="computed",
            doc="The version's aliases (`default` marks the model's default version).",
        ),
        attr("display_name", _S, kind="computed", doc="The model's display name."),
        attr("description", _S, kind="computed", doc="The version's description."),
        attr("labels", Map(_S), kind="computed", doc="The version's labels."),
        attr(
            "artifact_uri",
            _S,
            kind="computed",
            doc="The gs:// folder the version's artifact was uploaded from.",
        ),
        attr("container_image_uri", _S, kind="computed", doc="The serving image the version runs."),
        attr(
            "deployed_models",
            List(_S),
            kind="computed",
            doc="Where it is deployed: `projects/P/locations/R/endpoints/E/deployedModels/D`.",
        ),
    ]

    def validate(self, diags: Diagnostics, type_name: str, config: State) -> None:
        super().validate(diags, type_name, config)
        validate_common(diags, config, self.provider.allow_unlisted_regions)
        if known(config.get("model_id")):
            rule(diags, "model_id", rules.model_id(config["model_id"], existing=True))

    def read(self, ctx: ReadDataContext, config: State) -> State | None:
        model = f"projects/{config['project']}/locations/{config['region']}/models/{config['model_id']}"
        version = config.get("version") or "default"
        try:
            found = self.client.get(f"{model}@{version}", what=f"get {model}@{version}")
        except VertexError as error:
            report(ctx.diagnostics, error, {}, "version")
            return None
        if found is None:
            ctx.diagnostics.add_error(f"{model}@{version}: no such model version", "", path=["version"])
            return None
        container = found.get("containerSpec") or {}
        return {
            **config,
            "version": config.get("version"),
            "id": f"{model}@{found['versionId']}",
            "version_id": found["versionId"],
            "version_aliases": sorted(found.get("versionAliases") or []),
            "display_name": found.get("displayName"),
            "description": found.get("description"),
            "labels": found.get("labels") or {},
            "artifact_uri": found.get("artifactUri"),
            "container_image_uri": container.get("imageUri"),
            # Vertex AI names them with the project number; shown with the project as configured.
            "deployed_models": [
                with_project(f"{d.get('endpoint')}/deployedModels/{d.get('deployedModelId')}", config["project"])
                for d in found.get("deployedModels") or []
            ],
        }
