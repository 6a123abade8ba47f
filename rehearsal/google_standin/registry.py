"""google_artifact_registry_repository (cleanup policies included) and
google_artifact_registry_repository_iam_member, against Artifact Registry v1 (repositories
create/get/patch/delete, getIamPolicy and setIamPolicy)."""

from __future__ import annotations

from tf.schema import Block, Schema
from tf.types import Bool, List, Map, Number, String

from provider.common import attr, known
from rehearsal.google_standin.base import SetBlock, StandInResource, camel, single_block

_S, _B = String(), Bool()
_POLICY_CONDITION = single_block(
    "condition",
    *(attr(n, _S, kind="optional") for n in ("tag_state", "older_than", "newer_than")),
    *(attr(n, List(_S), kind="optional") for n in ("tag_prefixes", "version_name_prefixes", "package_name_prefixes")),
)
_MOST_RECENT = single_block(
    "most_recent_versions",
    attr("keep_count", Number(), kind="optional"),
    attr("package_name_prefixes", List(_S), kind="optional"),
)


def _policies_to_api(policies) -> dict:
    out = {}
    for policy in policies or []:
        item = {"id": policy["id"], "action": policy["action"]}
        if policy.get("condition"):
            item["condition"] = {camel(k): v for k, v in policy["condition"].items() if v not in (None, [])}
        if policy.get("most_recent_versions"):
            item["mostRecentVersions"] = {
                camel(k): v for k, v in policy["most_recent_versions"].items() if v not in (None, [])
            }
        out[policy["id"]] = item
    return out


class ArtifactRegistryRepository(StandInResource):
    @classmethod
    def get_name(cls):
        return "artifact_registry_repository"

    @classmethod
    def get_schema(cls):
        return Schema(
            version=0,
            attributes=[
                attr("repository_id", _S, kind="required", replace=True),
                attr("format", _S, kind="required", replace=True),
                attr("location", _S, kind="optional+computed", replace=True),
                attr("project", _S, kind="optional+computed", replace=True),
                attr("description", _S, kind="optional"),
                attr("labels", Map(_S), kind="optional"),
                attr("kms_key_name", _S, kind="optional", replace=True),
                attr("cleanup_policy_dry_run", _B, kind="optional"),
                attr("deletion_policy", _S, kind="optional"),
                attr("mode", _S, kind="optional+computed", replace=True),
                attr("id", _S, kind="computed"),
                attr("name", _S, kind="computed"),
                attr("create_time", _S, kind="computed"),
            ],
            block_types=[
                single_block("docker_config", attr("immutable_tags", _B, kind="optional")),
                SetBlock(
                    "cleanup_policies",
                    Block(
                        attributes=[attr("id", _S, kind="required"), attr("action", _S, kind="optional")],
                        block_types=[_POLICY_CONDITION, _MOST_RECENT],
                    ),
                ),
            ],
        )

    def _name(self, state: dict) -> str:
        project = state.get("project") if known(state.get("project")) else self.provider.settings["project"]
        location = state.get("location") if known(state.get("location")) else self.provider.settings["region"]
        return f"projects/{project}/locations/{location}/repositories/{state['repository_id']}"

    def _body(self, planned: dict) -> dict:
        body = {
            "format": planned["format"],
            "description": planned.get("description") or "",
            "labels": planned.get("labels") or {},
            "cleanupPolicies": _policies_to_api(planned.get("cleanup_policies")),
            "cleanupPolicyDryRun": bool(planned.get("cleanup_policy_dry_run")),
        }
        if planned.get("kms_key_name"):
            body["kmsKeyName"] = planned["kms_key_name"]
        if planned.get("docker_config"):
            body["dockerConfig"] = {"immutableTags": bool(planned["docker_config"].get("immutable_tags"))}
        return body

    def _state(self, found: dict, planned: dict) -> dict:
        name = found["name"]
        project, location = name.split("/")[1], name.split("/")[3]
        return {
            **planned,
            "project": planned.get("project") if known(planned.get("project")) else project,
            "location": planned.get("location") if known(planned.get("location")) else location,
            "mode": found.get("mode"),
            "name": planned["repository_id"],
            "id": name,
            "create_time": found.get("createTime"),
        }

    def create(self, ctx, planned):
        def work():
            parent = self._name(planned).rsplit("/repositories/", 1)[0]
            op = self.provider.call(
                "POST",
                self.provider.endpoint("artifact_registry_custom_endpoint", f"{parent}/repositories"),
                body=self._body(planned),
                params={"repositoryId": planned["repository_id"]},
            )
            found = (op or {}).get("response") or self.provider.call(
                "GET", self.provider.endpoint("artifact_registry_custom_endpoint", self._name(planned))
            )
            return self._state(found, planned)

        return self.run(ctx, work)

    def read(self, ctx, current):
        def work():
            found = self.provider.call(
                "GET", self.provider.endpoint("artifact_registry_custom_endpoint", self._name(current))
            )
            return None if found is None else self._state(found, current)

        return self.run(ctx, work)

    def _update(self, current, planned):
        mask = "description,labels,cleanupPolicies,cleanupPolicyDryRun,dockerConfig"
        self.provider.call(
            "PATCH",
            self.provider.endpoint("artifact_registry_custom_endpoint", self._name(current)),
            body=self._body(planned),
            params={"updateMask": mask},
        )
        return {**planned, **{k: current[k] for k in ("id", "name", "create_time", "mode")}}

    def delete(self, ctx, current):
        if current.get("deletion_policy") == "ABANDON":
            return None  # the repository and its images stay: only forgotten

        def work():
            self.provider.call(
                "DELETE", self.provider.endpoint("artifact_registry_custom_endpoint", self._name(current))
            )

        return self.run(ctx, work)


class ArtifactRegistryRepositoryIamMember(StandInResource):
    """One member of one role in the repository's IAM policy (read-modify-write with the
    policy's etag, as the real provider's iam_member does)."""

    @classmethod
    def get_name(cls):
        return "artifact_registry_repository_iam_member"

    @classmethod
    def get_schema(cls):
        return Schema(
            version=0,
            attributes=[
                attr("repository", _S, kind="required", replace=True),
                attr("role", _S, kind="required", replace=True),
                attr("member", _S, kind="required", replace=True),
                attr("location", _S, kind="optional+computed", replace=True),
                attr("project", _S, kind="optional+computed", replace=True),
                attr("etag", _S, kind="computed"),
                attr("id", _S, kind="computed"),
            ],
        )

    def _name(self, state: dict) -> str:
        project = state.get("project") if known(state.get("project")) else self.provider.settings["project"]
        location = state.get("location") if known(state.get("location")) else self.provider.settings["region"]
        return f"projects/{project}/locations/{location}/repositories/{state['repository']}"

    def _policy(self, state: dict) -> dict:
        return (
            self.provider.call(
                "POST",
                self.provider.endpoint("artifact_registry_custom_endpoint", f"{self._name(state)}:getIamPolicy"),
                body={},
            )
            or {}
        )

    def _set(self, state: dict, change) -> dict:
        policy = self._policy(state)
        bindings = change([dict(b) for b in policy.get("bindings") or []])
        stored = self.provider.call(
            "POST",
            self.provider.endpoint("artifact_registry_custom_endpoint", f"{self._name(state)}:setIamPolicy"),
            body={"policy": {"bindings": bindings, "etag": policy.get("etag")}},
        )
        return stored

    def create(self, ctx, planned):
        def add(bindings):
            for binding in bindings:
                if binding["role"] == planned["role"]:
                    binding["members"] = sorted(set(binding.get("members", [])) | {planned["member"]})
                    return bindings
            return bindings + [{"role": planned["role"], "members": [planned["member"]]}]

        def work():
            stored = self._set(planned, add)
            return {
                **planned,
                "etag": stored.get("etag"),
                "id": f"{self._name(planned)}/{planned['role']}/{planned['member']}",
                "project": self._name(planned).split("/")[1],
                "location": self._name(planned).split("/")[3],
            }

        return self.run(ctx, work)

    def read(self, ctx, current):
        def work():
            policy = self._policy(current)
            held = any(
                b["role"] == current["role"] and current["member"] in b.get("members", [])
                for b in policy.get("bindings") or []
            )
            return {**current, "etag": policy.get("etag")} if held else None

        return self.run(ctx, work)

    def delete(self, ctx, current):
        def drop(bindings):
            for binding in bindings:
                if binding["role"] == current["role"]:
                    binding["members"] = [m for m in binding.get("members", []) if m != current["member"]]
            return [b for b in bindings if b.get("members")]

        return self.run(ctx, lambda: self._set(current, drop) and None)
