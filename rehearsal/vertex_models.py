"""The Vertex AI emulator's models API: upload, versions, aliases, update, delete (v1
`projects.locations.models`), strict as rehearsal/vertex_emulator.py's rule table says.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re

from rehearsal.vertex_common import (
    DEPLOYMENT_TYPES,
    INPUT_FORMATS,
    MERGE_ALIAS,
    MODEL_ID,
    OUTPUT_FORMATS,
    VERSION_ALIAS,
    ApiError,
    Host,
    now,
)


class ModelsApi(Host):
    """`projects.locations.models.*`, on the Emulator's state."""

    def _model(self, base: str) -> dict:
        model = self.state["models"].get(base)
        if model is None:
            raise ApiError("NOT_FOUND", f"Model {base} is not found.")
        return model

    def _resolve(self, name: str) -> dict:
        """The version a name designates: `M` (the default version), `M@versionId`, `M@alias`."""
        base, _, version = self.canon(name).partition("@")
        model = self._model(base)
        version = version or "default"
        for v in model["versions"]:
            if v["versionId"] == version or version in v["versionAliases"]:
                return v
        raise ApiError("NOT_FOUND", f"Model {base}@{version} is not found.")

    def _deployments_of(self, base: str, version_id: str | None = None) -> list[dict]:
        return [
            {"endpoint": e["name"], "deployedModelId": d["id"]}
            for e in self.state["endpoints"].values()
            for d in e.get("deployedModels", [])
            if d["model"] == base and version_id in (None, d["modelVersionId"])
        ]

    def model_view(self, version: dict) -> dict:
        """A model version as GetModel returns it: model-level and version-level fields merged,
        with the output-only fields."""
        model = self.state["models"][version["name"]]
        view = {k: v for k, v in version.items() if k not in ("labels",)}
        view.update({k: v for k, v in model["model"].items() if k != "labels"})
        labels = {**model["model"].get("labels", {}), **version.get("labels", {})}
        if labels:
            view["labels"] = labels
        view["versionAliases"] = list(version["versionAliases"])
        view["supportedDeploymentResourcesTypes"] = list(DEPLOYMENT_TYPES)
        view["supportedInputStorageFormats"] = list(INPUT_FORMATS)
        view["supportedOutputStorageFormats"] = list(OUTPUT_FORMATS)
        view["modelSourceInfo"] = {"sourceType": "CUSTOM"}
        deployed = self._deployments_of(version["name"], version["versionId"])
        if deployed:
            view["deployedModels"] = deployed
        view["etag"] = hashlib.sha256(json.dumps(view, sort_keys=True).encode()).hexdigest()[:24]
        return view

    def _check_aliases(self, aliases: list, field: str, pattern: re.Pattern = VERSION_ALIAS) -> list[str]:
        if not isinstance(aliases, list):
            raise ApiError("INVALID_ARGUMENT", f"{field} must be a list of strings")
        for alias in aliases:
            if not isinstance(alias, str) or not pattern.fullmatch(alias):
                raise ApiError(
                    "INVALID_ARGUMENT",
                    f"{field}: {alias!r} is not a valid version alias; allowed: {pattern.pattern} (2-128 characters)",
                )
        if len(set(aliases)) != len(aliases):
            raise ApiError("INVALID_ARGUMENT", f"{field} repeats an alias: {aliases}")
        return list(aliases)

    def upload(self, parent: str, body: dict) -> dict:
        parent = self.canon(parent)
        model = dict(body.get("model") or {})
        if not model.get("displayName"):
            raise ApiError("INVALID_ARGUMENT", "model.display_name is required.")
        if len(model["displayName"]) > 128:
            raise ApiError("INVALID_ARGUMENT", "model.display_name: at most 128 characters.")
        if not (model.get("containerSpec") or {}).get("imageUri"):
            raise ApiError("INVALID_ARGUMENT", "model.container_spec.image_uri is required for a custom model.")
        artifact = model.get("artifactUri")
        if artifact is not None and not re.fullmatch(r"gs://[^/]+(/.*)?", artifact):
            raise ApiError("INVALID_ARGUMENT", f"model.artifact_uri {artifact!r}: allowed: a gs://bucket/path URI")
        aliases = self._check_aliases(model.pop("versionAliases", []), "model.version_aliases")
        for output_only in (
            "name",
            "versionId",
            "createTime",
            "updateTime",
            "versionCreateTime",
            "versionUpdateTime",
            "deployedModels",
            "etag",
            "supportedDeploymentResourcesTypes",
        ):
            model.pop(output_only, None)
        created = now()
        parent_model = body.get("parentModel")
        if parent_model:
            base = self.canon(parent_model)
            if "@" in base or not base.startswith(parent + "/models/"):
                raise ApiError(
                    "INVALID_ARGUMENT",
                    f"parent_model {parent_model!r}: allowed: {parent}/models/<model ID>, without a version",
                )
            if body.get("modelId") and base.rsplit("/", 1)[1] != body["modelId"]:
                raise ApiError("INVALID_ARGUMENT", "model_id and parent_model name different models.")
            record = self._model(base)
            taken = {a: v["versionId"] for v in record["versions"] for a in v["versionAliases"] if a != "default"}
            clash = sorted(set(aliases) & set(taken))
            if clash:
                raise ApiError(
                    "ALREADY_EXISTS",
                    f"version aliases {clash} are already used by another version of "
                    f"{base}; move them with mergeVersionAliases",
                )
            version_id = str(max(int(v["versionId"]) for v in record["versions"]) + 1)
            if "default" in aliases:
                for v in record["versions"]:
                    v["versionAliases"] = [a for a in v["versionAliases"] if a != "default"]
        else:
            model_id = body.get("modelId")
            if model_id is None:
                model_id = self._generated_id()
            elif not MODEL_ID.fullmatch(model_id):
                raise ApiError(
                    "INVALID_ARGUMENT",
                    f"model_id {model_id!r} is invalid; allowed: up to 63 of [a-z0-9_-], the first not a digit or '-'",
                )
            base = f"{parent}/models/{model_id}"
            if base in self.state["models"]:
                raise ApiError("ALREADY_EXISTS", f"Model {base} already exists.")
            record = {
                "model": {
                    "displayName": model["displayName"],
                    **({"description": model["description"]} if model.get("description") else {}),
                    **({"labels": dict(model["labels"])} if model.get("labels") else {}),
                    "createTime": created,
                    "updateTime": created,
                },
                "versions": [],
            }
            self.state["models"][base] = record
            version_id = "1"
            if "default" not in aliases:
                aliases = ["default", *aliases]
        for model_level in ("displayName", "description"):
            model.pop(model_level, None)
        version = {
            **model,
            "name": base,
            "versionId": version_id,
            "versionAliases": aliases,
            "versionCreateTime": created,
            "versionUpdateTime": created,
        }
        record["versions"].append(version)
        self.count("uploadModel", f"{base}@{version_id}")
        return self.operation(
            base, "UploadModel", lambda: {"model": base, "modelVersionId": version_id}, "UploadModelResponse"
        )

    def list_versions(self, name: str) -> dict:
        base = self.canon(name)
        if "@" in base:
            raise ApiError("INVALID_ARGUMENT", f"{name}: listVersions takes a model name without a version")
        return {"models": [self.model_view(v) for v in self._model(base)["versions"]]}

    def list_models(self, parent: str) -> dict:
        parent = self.canon(parent) + "/models/"
        return {
            "models": [
                self.model_view(self._resolve(base)) for base in sorted(self.state["models"]) if base.startswith(parent)
            ]
        }

    def update_model(self, name: str, mask: list[str], body: dict) -> dict:
        base, _, version_id = self.canon(name).partition("@")
        model = self._model(base)
        if not mask:
            raise ApiError("INVALID_ARGUMENT", "update_mask is required.")
        version_level = bool(version_id) and version_id != "-"
        allowed = {"version_description", "labels"} if version_level else {"display_name", "description", "labels"}
        wrong = sorted(set(mask) - {"version_description", "labels", "display_name", "description"})
        if wrong:
            raise ApiError(
                "INVALID_ARGUMENT",
                f"update_mask paths {wrong} cannot be updated; allowed: "
                "display_name, description, labels (model), version_description, "
                "labels (version)",
            )
        if set(mask) - allowed:
            raise ApiError(
                "FAILED_PRECONDITION",
                f"update_mask {mask} mixes model and version fields for {name}: "
                "update the model (M or M@-) and a version (M@V) separately",
            )
        updated = now()
        if version_level:
            target = self._resolve(name)
            for path in mask:
                key = {"version_description": "versionDescription"}.get(path, path)
                if body.get(key):
                    target[key] = copy.deepcopy(body[key])
                else:
                    target.pop(key, None)
            target["versionUpdateTime"] = updated
        else:
            target = self._resolve(base)
            for path in mask:
                key = {"display_name": "displayName"}.get(path, path)
                if path == "display_name" and not body.get(key):
                    raise ApiError("INVALID_ARGUMENT", "model.display_name is required.")
                if body.get(key):
                    model["model"][key] = copy.deepcopy(body[key])
                else:
                    model["model"].pop(key, None)
            model["model"]["updateTime"] = updated
        self.count("updateModel", name, ",".join(mask))
        self.save()
        return self.model_view(target)

    def merge_aliases(self, name: str, body: dict) -> dict:
        base, _, version_id = self.canon(name).partition("@")
        if not version_id.isdigit():
            raise ApiError("INVALID_ARGUMENT", f"{name}: mergeVersionAliases needs the version ID (M@1), not an alias")
        target = self._resolve(name)
        changes = body.get("versionAliases") or []
        if not changes:
            raise ApiError("INVALID_ARGUMENT", "version_aliases is required.")
        adds = [c for c in changes if not c.startswith("-")]
        removes = [c[1:] for c in changes if c.startswith("-")]
        self._check_aliases(adds, "version_aliases", MERGE_ALIAS)
        self._check_aliases(removes, "version_aliases", MERGE_ALIAS)
        if "default" in removes and "default" not in adds:
            raise ApiError(
                "INVALID_ARGUMENT",
                "the default alias cannot be removed: a model has exactly one default "
                "version; add 'default' to another version instead",
            )
        versions = self._model(base)["versions"]
        for alias in set(adds) - set(removes):
            for v in versions:
                if v is not target and alias in v["versionAliases"]:
                    v["versionAliases"].remove(alias)
                    v["versionUpdateTime"] = now()
            if alias not in target["versionAliases"]:
                target["versionAliases"].append(alias)
        for alias in set(removes) - set(adds):
            if alias in target["versionAliases"]:
                target["versionAliases"].remove(alias)
        target["versionUpdateTime"] = now()
        self.count("mergeVersionAliases", f"{base}@{target['versionId']}", json.dumps(changes))
        self.save()
        return self.model_view(target)

    def delete_model(self, name: str) -> dict:
        base = self.canon(name)
        if "@" in base:
            raise ApiError(
                "INVALID_ARGUMENT", f"{name}: deleteModel takes a model name; use deleteVersion for one version"
            )
        self._model(base)
        deployed = self._deployments_of(base)
        if deployed:
            raise ApiError(
                "FAILED_PRECONDITION",
                f"Model {base} is deployed on {deployed[0]['endpoint']} "
                f"(deployed model {deployed[0]['deployedModelId']}); undeploy it "
                "first",
            )
        del self.state["models"][base]
        self.count("deleteModel", base)
        return self.operation(base, "Delete", lambda: {}, "google.protobuf.Empty")

    def delete_version(self, name: str) -> dict:
        base, _, version_id = self.canon(name).partition("@")
        if not version_id.isdigit():
            raise ApiError(
                "INVALID_ARGUMENT",
                f"{name}: deleteVersion needs the version ID explicitly (projects/.../models/M@1234), not an alias",
            )
        target = self._resolve(name)
        versions = self._model(base)["versions"]
        deployed = self._deployments_of(base, version_id)
        if deployed:
            raise ApiError(
                "FAILED_PRECONDITION",
                f"Model version {base}@{version_id} is deployed on {deployed[0]['endpoint']}; undeploy it first",
            )
        if len(versions) == 1:
            raise ApiError("FAILED_PRECONDITION", f"{base}@{version_id} is the only version; delete the model instead")
        if "default" in target["versionAliases"]:
            raise ApiError(
                "FAILED_PRECONDITION",
                f"{base}@{version_id} holds the default alias and cannot be "
                "deleted; move 'default' to another version first "
                "(mergeVersionAliases)",
            )
        versions.remove(target)
        self.count("deleteModelVersion", f"{base}@{version_id}")
        return self.operation(base, "Delete", lambda: {}, "google.protobuf.Empty")
