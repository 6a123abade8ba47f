"""`eevertex_model`: one version of a Vertex AI Model, uploaded from the bucket artifact.

API (aiplatform_v1 ModelService, REST v1): UploadModel `POST {parent}/models:upload` (LRO),
GetModel `GET models/M@V|M@alias|M`, ListModelVersions `GET models/M:listVersions`,
UpdateModel `PATCH models/M[@V]?updateMask=`, MergeVersionAliases `POST models/M@V:mergeVersionAliases`,
DeleteModelVersion `DELETE models/M@V:deleteVersion` (LRO), DeleteModel `DELETE models/M` (LRO).
Nothing here touches the bucket: the artifact outlives every version made from it. The request and
answer JSON: provider/model_api.py.
"""

from __future__ import annotations

import re

from tf.iface import (
    CreateContext,
    DeleteContext,
    ImportContext,
    PlanContext,
    ReadContext,
    State,
    UpdateContext,
)
from tf.types import Number, String, Unknown
from tf.utils import Diagnostics

from config import rules
from provider.client import VertexError, log, report
from provider.common import (
    PROJECT_REGION_DOC,
    TIMEOUTS,
    ListOf,
    MapOf,
    ProviderResource,
    attr,
    differences,
    import_parts,
    keep_timeouts,
    known,
    replaced_attributes,
    rule,
    validate_common,
)
from provider.model_api import ALIAS, FIELDS, deployed_names, from_api, model_name, model_update, to_api

_S, _N = String(), Number()
_ATTRIBUTES = [
    attr("project", _S, kind="required", replace=True, doc=PROJECT_REGION_DOC["project"]),
    attr("region", _S, kind="required", replace=True, doc=PROJECT_REGION_DOC["region"]),
    attr(
        "model_id",
        _S,
        kind="required",
        replace=True,
        doc="ID of the parent model (`[a-z0-9_-]`, at most 63, not starting with a digit or hyphen).",
    ),
    attr(
        "version_alias",
        _S,
        kind="required",
        doc="Deterministic alias of this version (e.g. from the artifact hash and container spec): "
        "the key that makes an interrupted create adoptable. Changed in place (mergeVersionAliases), "
        "e.g. to give an imported version our alias.",
    ),
    attr("display_name", _S, kind="required", doc="Model display name (model level; updated in place)."),
    attr("description", _S, kind="optional", doc="Model description (model level; updated in place)."),
    attr("labels", MapOf(_S), kind="optional", doc="Version labels (updated in place; absent == empty)."),
    attr("artifact_uri", _S, kind="required", replace=True, doc="gs:// folder of the model artifact."),
    attr("container_image_uri", _S, kind="required", replace=True, doc="Serving container image."),
    attr(
        "container_command",
        ListOf(_S),
        kind="optional",
        replace=True,
        doc="ModelContainerSpec.command: the container's entrypoint, overriding the image's `ENTRYPOINT` (unset: the "
        "image's own).",
    ),
    attr(
        "container_args",
        ListOf(_S),
        kind="optional",
        replace=True,
        doc="ModelContainerSpec.args: arguments to the entrypoint, overriding the image's `CMD`.",
    ),
    attr(
        "container_env",
        MapOf(_S),
        kind="optional",
        replace=True,
        doc="ModelContainerSpec.env: environment variables of the serving container (name -> value; Vertex AI keeps "
        "them in order of name here).",
    ),
    attr(
        "container_ports",
        ListOf(_N),
        kind="optional+computed",
        replace=True,
        doc="HTTP ports; Vertex AI's default is [8080].",
    ),
    attr(
        "container_grpc_ports",
        ListOf(_N),
        kind="optional",
        replace=True,
        doc="ModelContainerSpec.grpcPorts: the container's gRPC port (at most one; Earth Engine's GRPC_* payload "
        "formats need 8500, as `--container-grpc-ports=8500`).",
    ),
    attr(
        "container_predict_route",
        _S,
        kind="optional",
        replace=True,
        doc="ModelContainerSpec.predictRoute: the HTTP path Vertex AI forwards predictions to (`AIP_PREDICT_ROUTE` in "
        "the container); unset: Vertex AI's default for the image.",
    ),
    attr(
        "container_health_route",
        _S,
        kind="optional",
        replace=True,
        doc="ModelContainerSpec.healthRoute: the HTTP path Vertex AI checks for health (`AIP_HEALTH_ROUTE`).",
    ),
    attr(
        "container_deployment_timeout_seconds",
        _N,
        kind="optional",
        replace=True,
        doc="ModelContainerSpec.deploymentTimeout, in seconds: how long a deployment may take before Vertex AI gives "
        "up (Vertex AI's default: 20 minutes).",
    ),
    attr(
        "container_shared_memory_size_mb",
        _N,
        kind="optional",
        replace=True,
        doc="ModelContainerSpec.sharedMemorySizeMb: the size of /dev/shm in the container.",
    ),
    attr(
        "container_startup_probe_exec",
        ListOf(_S),
        kind="optional",
        replace=True,
        doc="ModelContainerSpec.startupProbe.exec.command: a command whose success tells Vertex AI the container has "
        "started.",
    ),
    attr(
        "container_startup_probe_period_seconds",
        _N,
        kind="optional",
        replace=True,
        doc="ModelContainerSpec.startupProbe.periodSeconds: how often the startup probe runs.",
    ),
    attr(
        "container_startup_probe_timeout_seconds",
        _N,
        kind="optional",
        replace=True,
        doc="ModelContainerSpec.startupProbe.timeoutSeconds: how long one startup probe may take.",
    ),
    attr(
        "container_health_probe_exec",
        ListOf(_S),
        kind="optional",
        replace=True,
        doc="ModelContainerSpec.healthProbe.exec.command: a command whose success tells Vertex AI the container is "
        "healthy (instead of the health route).",
    ),
    attr(
        "container_health_probe_period_seconds",
        _N,
        kind="optional",
        replace=True,
        doc="ModelContainerSpec.healthProbe.periodSeconds: how often the health probe runs.",
    ),
    attr(
        "container_health_probe_timeout_seconds",
        _N,
        kind="optional",
        replace=True,
        doc="ModelContainerSpec.healthProbe.timeoutSeconds: how long one health probe may take.",
    ),
    attr("kms_key_name", _S, kind="optional", replace=True, doc="CMEK key for the model."),
    attr("id", _S, kind="computed", doc="`projects/P/locations/R/models/M@VERSION_ID`."),
    attr("version_id", _S, kind="computed", doc="The version ID Vertex AI gave this upload (`1`, `2`, ...)."),
    attr("model_name", _S, kind="computed", doc="`projects/P/locations/R/models/M`."),
    attr("version_aliases", ListOf(_S), kind="computed", doc="Every alias this version holds."),
]


class Model(ProviderResource):
    EXAMPLE = """
resource "eevertex_model" "model_v1a2b3c" {
  project             = "acme-geo-dev"
  region              = "us-central1"
  model_id            = "landcover-torch"
  version_alias       = "v1a2b3c4d5e6"
  display_name        = "landcover-torch"
  artifact_uri        = "gs://acme-geo-dev-ee-models/models/landcover-torch/<sha256>/"
  container_image_uri = eevertex_image.pytorch_cpu.id
  container_env       = { EEV_TORCH_THREADS = "4" }
  lifecycle { create_before_destroy = true }
}
"""

    IMPORT = """
`projects/P/locations/R/models/M@VERSION_ID`, `.../models/M@ALIAS` or `.../models/M` (its default
version), as gcloud prints them (the project as ID or number), or the short `P/R/M[@VERSION]`:
`terraform import eevertex_model.model_v1a2b3c projects/acme-geo-dev/locations/us-central1/models/landcover-torch@1`.
The alias is kept as the config names it, so an import plans no change.
"""

    NAME = "model"
    DESCRIPTION = (
        "One version of a Vertex AI Model uploaded from a bucket artifact. Artifact or container "
        "changes make a new version of the same model; deleting never touches the bucket."
    )
    ATTRIBUTES = _ATTRIBUTES
    BLOCKS = [TIMEOUTS]

    def plan(self, ctx: PlanContext, current: State | None, planned: State) -> State:
        if current is None:
            return planned
        self.keep_prior_project(current, planned, model_name)
        alias, old = planned.get("version_alias"), current.get("version_alias")
        if known(alias) and alias != old and current.get("version_aliases") is not Unknown:
            # mergeVersionAliases adds our alias and removes the one it replaces (never `default`):
            # the plan shows exactly the aliases the version will hold.
            held = set(current.get("version_aliases") or [])
            planned["version_aliases"] = sorted((held - ({old} - {"default"})) | {alias})
        replaced = sorted(
            {k for k in ctx.changed_fields if planned.get(k) != current.get(k)} & set(replaced_attributes(_ATTRIBUTES))
        )
        if current is not None and replaced and self.provider.client is not None:
            self._warn_if_deployed(ctx, current, replaced)
        return planned

    def _warn_if_deployed(self, ctx: PlanContext, current: State, replaced: list[str]) -> None:
        """A replacement deletes this version; Vertex AI refuses that while it is deployed. Say
        so in the plan (the deployments may move off it earlier in the same apply)."""
        target = f"{model_name(current)}@{current['version_id']}"
        try:
            version = self.client.get(target, what=f"get {target}")
        except VertexError:
            return
        deployed = (version or {}).get("deployedModels") or []
        if deployed:
            where = deployed_names(deployed)
            ctx.diagnostics.add_warning(
                f"{target} is deployed: replacing it ({', '.join(replaced)}) deletes it",
                f"Deployed as {where}. The delete fails unless those deployments move off it first in the same "
                "apply; otherwise keep this version declared until the deployments have moved.",
                path=[replaced[0]],
            )

    def validate(self, diags: Diagnostics, type_name: str, config: State) -> None:
        super().validate(diags, type_name, config)
        validate_common(diags, config, self.provider.allow_unlisted_regions)
        if known(config.get("model_id")):
            rule(diags, "model_id", rules.model_id(config["model_id"], existing=True))
        if known(config.get("display_name")):
            rule(diags, "display_name", rules.display_name(config["display_name"]))
        if known(config.get("labels")) and all(known(v) for v in config["labels"].values()):
            rule(diags, "labels", rules.labels(config["labels"]))
        alias = config.get("version_alias")
        if known(alias) and (not ALIAS.fullmatch(alias) or alias == "default"):
            diags.add_error(
                f"version_alias = {alias!r} is not a valid version alias",
                "Allowed: [a-z][a-zA-Z0-9-]{0,126}[a-z0-9-] (at most 128 characters), not `default` "
                "(Vertex AI moves that one).",
                path=["version_alias"],
            )
        uri = config.get("artifact_uri")
        if known(uri) and not re.fullmatch(r"gs://[^/]+/.+", uri):
            diags.add_error(f"artifact_uri = {uri!r} is not a gs://BUCKET/PATH folder", "", path=["artifact_uri"])
        for key in ("container_ports", "container_grpc_ports"):
            ports = config.get(key)
            if known(ports) and any(known(p) and not (isinstance(p, int) and 1 <= p <= 65535) for p in ports):
                diags.add_error(f"{key} = {ports} must be whole numbers in 1..65535", "", path=[key])

    # -- CRUD ---------------------------------------------------------------------------------

    def create(self, ctx: CreateContext, planned: State) -> State | None:
        with self.change(planned, "create", locked=model_name(planned)):
            return keep_timeouts(self._create(ctx, planned), planned)

    def _create(self, ctx: CreateContext, planned: State) -> State | None:
        name = model_name(planned)
        try:
            # Read before create: a version holding our alias is ours (an earlier, interrupted
            # apply uploaded it): adopt it instead of uploading a duplicate.
            version = self.client.get(f"{name}@{planned['version_alias']}", what=f"get {name}")
            if version is not None:
                found = from_api(version, planned)
                other = differences(planned, found, replaced_attributes(_ATTRIBUTES))
                if other:
                    shown = ", ".join(f"{k} = {found[k]!r} (config: {planned[k]!r})" for k in other)
                    ctx.diagnostics.add_error(
                        f"{name}@{planned['version_alias']} exists with other settings",
                        f"{shown}. version_alias must be derived from the artifact and container spec.",
                        path=[other[0]],
                    )
                    return None
                log(f"{name}@{planned['version_alias']} exists (version {version['versionId']}): adopted")
            else:
                body: dict = {"model": to_api(planned)}
                parent = name.rsplit("/models/", 1)[0]
                if self.client.get(name, what=f"get {name}") is None:
                    problem = rules.model_id(planned["model_id"], existing=False)
                    if problem:
                        ctx.diagnostics.add_error(
                            f"model {name} does not exist, and model_id cannot name a new one: {problem}",
                            "",
                            path=["model_id"],
                        )
                        return None
                    body["modelId"] = planned["model_id"]
                else:
                    body["parentModel"] = name
                log(f"upload {name} ({planned['version_alias']}) from {planned['artifact_uri']}")
                done = self.client.operation("POST", f"{parent}/models:upload", f"upload {name}", body=body)
                version = self.client.get(f"{name}@{done['modelVersionId']}", what=f"get {name}")
            self._converge_model_fields(name, planned, version)
            version = self.client.get(f"{name}@{version['versionId']}", what=f"get {name}")
        except VertexError as error:
            report(ctx.diagnostics, error, FIELDS, "artifact_uri")
            return None
        return from_api(version, planned)

    def _converge_alias(self, name: str, planned: State, version: dict, old: str | None) -> None:
        alias = planned["version_alias"]
        if alias in (version.get("versionAliases") or []):
            return
        holder = self.client.get(f"{name}@{alias}", what=f"get {name}@{alias}")
        if holder is not None:
            # mergeVersionAliases would MOVE it from that version: refuse instead.
            raise VertexError(
                409,
                "ALREADY_EXISTS",
                f"versionAliases: {alias} is held by version {holder['versionId']} of {name}",
                f"set version_alias of {name}@{version['versionId']}",
            )
        merge = [alias] + ([f"-{old}"] if old and old != "default" and old in version.get("versionAliases", []) else [])
        log(f"{name}@{version['versionId']}: version aliases {merge}")
        self.client.request(
            "POST",
            f"{name}@{version['versionId']}:mergeVersionAliases",
            body={"versionAliases": merge},
            what=f"set version_alias of {name}@{version['versionId']}",
        )

    def _converge_model_fields(self, name: str, planned: State, version: dict) -> None:
        """Model-level fields (shared by all versions) and version labels, as planned."""
        body = model_update(planned, version)
        if body:
            self.client.request("PATCH", name, body=body, params={"updateMask": ",".join(body)}, what=f"update {name}")
        wanted = dict(planned.get("labels") or {})
        if (version.get("labels") or {}) != wanted:
            # UpdateModel on `M@V` with labels in the mask sets the version's labels; GetModel
            # returns model and version labels merged (model_service.py UpdateModelRequest,
            # point 4). Labels set at the model level (the first upload, gcloud) would show
            # through on every version: clear them, so each version shows exactly its own.
            target = f"{name}@{version['versionId']}"
            self.client.request(
                "PATCH", target, body={"labels": wanted}, params={"updateMask": "labels"}, what=f"update {target}"
            )
            merged = (self.client.get(target, what=f"get {target}") or {}).get("labels") or {}
            if merged != wanted:
                log(f"{name}: model-level labels {merged} show through; cleared (each version keeps its own)")
                self.client.request(
                    "PATCH", name, body={"labels": {}}, params={"updateMask": "labels"}, what=f"update {name}"
                )

    def read(self, ctx: ReadContext, current: State) -> State | None:
        name = model_name(current)
        try:
            version = self.client.get(f"{name}@{current['version_id']}", what=f"get {name}")
        except VertexError as error:
            report(ctx.diagnostics, error, FIELDS, "model_id")
            return current
        if version is None:
            return None
        return keep_timeouts(from_api(version, current), current)

    def update(self, ctx: UpdateContext, current: State, planned: State) -> State | None:
        with self.change(planned, "update"):
            return keep_timeouts(self._update(ctx, current, planned), planned)

    def _update(self, ctx: UpdateContext, current: State, planned: State) -> State | None:
        name = model_name(current)
        try:
            version = self.client.get(f"{name}@{current['version_id']}", what=f"get {name}")
            if version is None:
                ctx.diagnostics.add_error(f"{name}@{current['version_id']} no longer exists", "", path=["version_id"])
                return None
            with self.provider.lock(name):
                self._converge_alias(name, planned, version, current.get("version_alias"))
            self._converge_model_fields(name, planned, version)
            version = self.client.get(f"{name}@{current['version_id']}", what=f"get {name}")
        except VertexError as error:
            report(ctx.diagnostics, error, FIELDS, "display_name")
            return current
        return from_api(version, planned)

    def delete(self, ctx: DeleteContext, current: State) -> None:
        with self.change(current, "delete", locked=model_name(current)):
            self._delete(ctx, current)

    def _delete(self, ctx: DeleteContext, current: State) -> None:
        name = model_name(current)
        target = f"{name}@{current['version_id']}"
        try:
            version = self.client.get(target, what=f"get {target}")
            if version is None:
                log(f"{target} is already gone")
                return None
            deployed = version.get("deployedModels") or []
            if deployed:
                where = deployed_names(deployed)
                ctx.diagnostics.add_error(
                    f"{target} is still deployed",
                    f"Undeploy it first (delete those deployments): {where}.",
                    path=["id"],
                )
                return None
            versions = self._versions(name)
            if len(versions) <= 1:
                self.client.operation("DELETE", name, f"delete model {name}")
                return None
            if "default" in (version.get("versionAliases") or []):
                # DeleteModelVersion refuses the version holding `default`: move it first, to the
                # newest other version.
                others = [v for v in versions if v["versionId"] != version["versionId"]]
                newest = max(others, key=lambda v: (v.get("versionCreateTime", ""), int(v["versionId"])))
                log(f"move alias default of {name} to version {newest['versionId']}")
                self.client.request(
                    "POST",
                    f"{name}@{newest['versionId']}:mergeVersionAliases",
                    body={"versionAliases": ["default"]},
                    what=f"move default of {name}",
                )
            self.client.operation("DELETE", f"{target}:deleteVersion", f"delete model version {target}")
        except VertexError as error:
            report(ctx.diagnostics, error, FIELDS, "id")
        return None

    def _versions(self, name: str) -> list[dict]:
        versions: list[dict] = []
        token = None
        while True:
            page = self.client.request(
                "GET",
                f"{name}:listVersions",
                params={"pageToken": token} if token else None,
                what=f"list versions of {name}",
            )
            versions += page.get("models") or []
            token = page.get("nextPageToken")
            if not token:
                return versions

    def import_(self, ctx: ImportContext, id: str) -> State | None:
        parts = import_parts(id, "models/{}")
        if not parts:
            ctx.diagnostics.add_error(
                f"cannot import {id!r}",
                "Give projects/P/locations/R/models/M@VERSION_ID, .../models/M@ALIAS or .../models/M (its default "
                "version), as gcloud prints them (the project as ID or number), or the short P/R/M[@VERSION].",
            )
            return None
        project, region, (model,) = parts
        model_id, _, version = model.partition("@")
        prior = {"project": project, "region": region, "model_id": model_id}
        try:
            found = self.client.get(f"{model_name(prior)}@{version or 'default'}", what=f"get {id}")
        except VertexError as error:
            report(ctx.diagnostics, error, FIELDS, "id")
            return None
        if found is None:
            ctx.diagnostics.add_error(f"cannot import {id!r}: no such model version", "")
            return None
        # The alias we were given, else the version's own (first non-default) alias, else "".
        alias = version if version and not version.isdigit() and version != "default" else None
        return keep_timeouts(from_api(found, {**prior, "version_alias": alias}), None)
