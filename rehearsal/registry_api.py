"""The two other Google APIs a target's registry stack calls, emulated beside Vertex AI (the
same process, under their own prefixes), as strict as they are:

- Artifact Registry v1 (`/artifactregistry/v1/...`): repositories create (an operation),
  get, patch (updateMask), delete (an operation), getIamPolicy, setIamPolicy (etag). The
  images themselves are in the loopback registry (rehearsal/emulators.py); this is the control
  plane the google provider's `google_artifact_registry_repository` and
  `..._iam_member` call.
- Cloud Resource Manager v1 (`/cloudresourcemanager/v1/projects/P`): a project's number, as
  `data "google_project"` reads it (the number Vertex AI's names carry).

Rules, each from its source: [api] = the Artifact Registry v1 API reference (Repository,
Repository.Format: APT, DOCKER, GENERIC, GO, KFP, MAVEN, NPM, PYTHON, YUM); [mm] = the google
provider's schema of it (magic-modules mmv1/products/artifactregistry/Repository.yaml);
[cleanup] = "Configure cleanup policies" and "Cleanup policy overview"; [iam] = google.iam.v1.
| rule | source |
|---|---|
| repositoryId: a lowercase letter first, then up to 62 of `[a-z0-9-]`, not ending with `-` | gcloud artifacts repositories create REPOSITORY |
| format: one of the enum's values; dockerConfig only with DOCKER | [api] Repository.format, docker_config; [mm] |
| kmsKeyName, format, mode: immutable once created | [mm] kmsKeyName ("may not be changed after the Repository has been created"), immutable fields |
| cleanupPolicies: at most 10; action DELETE or KEEP; either a condition or mostRecentVersions, the latter with KEEP only; tagState TAGGED, UNTAGGED or ANY; olderThan/newerThan durations `<n>s` | [cleanup] ("at most 10 cleanup policies", "can't use Conditional keep and Keep most recent versions in the same policy"); [mm] mostRecentVersions ("May only be specified with a Keep action"), the duration expander |
| setIamPolicy: the etag, when given, must be the current one (409 ABORTED) | [iam] SetIamPolicyRequest, Policy.etag |
"""  # noqa: E501 - the rules are a Markdown table: one row per line, however long

from __future__ import annotations

import copy
import hashlib
import re

FORMATS = ("APT", "DOCKER", "GENERIC", "GO", "KFP", "MAVEN", "NPM", "PYTHON", "YUM")
TAG_STATES = ("TAGGED", "UNTAGGED", "ANY", "TAG_STATE_UNSPECIFIED")
REPOSITORY_ID = re.compile(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?")
DURATION = re.compile(r"[0-9]+(\.[0-9]+)?s")
MUTABLE = {"description", "labels", "cleanupPolicies", "cleanupPolicyDryRun", "dockerConfig"}


def project_number(project: str) -> str:
    """A stable 12-digit number per project ID (the Vertex AI emulator's, for the same project)."""
    if project.isdigit():
        return project
    return str(100_000_000_000 + int(hashlib.sha256(project.encode()).hexdigest(), 16) % 900_000_000_000)


class RegistryApi:
    """State lives in the emulator's `state["repositories"]` (saved with the rest)."""

    def __init__(self, emulator):
        self.emulator = emulator

    @property
    def repositories(self) -> dict:
        return self.emulator.state.setdefault("repositories", {})

    def error(self, status: str, message: str):
        return self.emulator.error(status, message)

    def handle(self, method: str, api: str, rest: str, query: dict, body: dict) -> dict:
        q = lambda key: (query.get(key) or [None])[0]  # noqa: E731
        if api == "cloudresourcemanager":
            if method == "GET" and (m := re.fullmatch(r"projects/([^/]+)", rest)):
                project = m.group(1)
                return {
                    "projectNumber": project_number(project),
                    "projectId": project,
                    "lifecycleState": "ACTIVE",
                    "name": project,
                }
            raise self.error("NOT_FOUND", f"no route {method} {rest}")
        if m := re.fullmatch(r"(projects/[^/]+/locations/[^/]+)/repositories", rest):
            if method == "POST":
                return self.create(m.group(1), q("repositoryId"), body)
            if method == "GET":
                parent = m.group(1)
                return {
                    "repositories": [
                        copy.deepcopy(r) for n, r in sorted(self.repositories.items()) if n.startswith(parent + "/")
                    ]
                }
        if m := re.fullmatch(
            r"(projects/[^/]+/locations/[^/]+/repositories/[^/:]+)(:getIamPolicy|:setIamPolicy)?", rest
        ):
            name, verb = m.groups()
            if verb == ":getIamPolicy":
                return copy.deepcopy(self._repository(name).get("_policy") or {"etag": "ACAB"})
            if verb == ":setIamPolicy":
                return self.set_policy(name, body)
            if method == "GET":
                return self.view(self._repository(name))
            if method == "PATCH":
                return self.patch(name, (q("updateMask") or "").split(","), body)
            if method == "DELETE":
                self._repository(name)
                del self.repositories[self.emulator.canon(name)]
                self.emulator.save()
                return self._done(name, {})
        if method == "GET" and re.fullmatch(r"projects/[^/]+/locations/[^/]+/operations/[^/]+", rest):
            return {"name": rest, "done": True, "response": {}}
        raise self.error("NOT_FOUND", f"no route {method} {rest}")

    def _repository(self, name: str) -> dict:
        found = self.repositories.get(self.emulator.canon(name))
        if found is None:
            raise self.error("NOT_FOUND", f"Requested entity was not found: {name}")
        return found

    def view(self, repository: dict) -> dict:
        return {k: copy.deepcopy(v) for k, v in repository.items() if not k.startswith("_")}

    def _check(self, body: dict, *, creating: bool) -> None:
        if creating and body.get("format") not in FORMATS:
            raise self.error("INVALID_ARGUMENT", f"format: {body.get('format')!r}; allowed: {', '.join(FORMATS)}")
        if body.get("dockerConfig") and body.get("format", "DOCKER") != "DOCKER":
            raise self.error("INVALID_ARGUMENT", "docker_config is only for DOCKER repositories")
        policies = body.get("cleanupPolicies") or {}
        if len(policies) > 10:
            raise self.error("INVALID_ARGUMENT", f"{len(policies)} cleanup policies; at most 10 per repository")
        for key, policy in policies.items():
            if policy.get("id", key) != key:
                raise self.error("INVALID_ARGUMENT", f"cleanup policy {key!r} has id {policy.get('id')!r}")
            if policy.get("action") not in ("DELETE", "KEEP"):
                raise self.error(
                    "INVALID_ARGUMENT",
                    f"cleanup policy {key!r}: action {policy.get('action')!r}; allowed: DELETE, KEEP",
                )
            condition, recent = policy.get("condition"), policy.get("mostRecentVersions")
            if bool(condition) == bool(recent):
                raise self.error(
                    "INVALID_ARGUMENT", f"cleanup policy {key!r}: give either condition or mostRecentVersions"
                )
            if recent and policy["action"] != "KEEP":
                raise self.error("INVALID_ARGUMENT", f"cleanup policy {key!r}: mostRecentVersions only with KEEP")
            for field in ("olderThan", "newerThan"):
                if condition and condition.get(field) and not DURATION.fullmatch(str(condition[field])):
                    raise self.error(
                        "INVALID_ARGUMENT",
                        f"cleanup policy {key!r}: {field} {condition[field]!r}; "
                        "allowed: a duration in seconds, e.g. '7776000s'",
                    )
            if condition and condition.get("tagState", "ANY") not in TAG_STATES:
                raise self.error("INVALID_ARGUMENT", f"cleanup policy {key!r}: tagState {condition['tagState']!r}")

    def create(self, parent: str, repository_id: str | None, body: dict) -> dict:
        if not repository_id or not REPOSITORY_ID.fullmatch(repository_id):
            raise self.error(
                "INVALID_ARGUMENT",
                f"repository_id {repository_id!r}: a lowercase letter first, then "
                "lowercase letters, digits and '-', at most 63, not ending with '-'",
            )
        name = self.emulator.canon(f"{parent}/repositories/{repository_id}")
        if name in self.repositories:
            raise self.error("ALREADY_EXISTS", f"the repository already exists: {name}")
        self._check(body, creating=True)
        now = self.emulator.now()
        self.repositories[name] = {
            **copy.deepcopy(body),
            "name": name,
            "createTime": now,
            "updateTime": now,
            "mode": body.get("mode") or "STANDARD_REPOSITORY",
            "sizeBytes": "0",
        }
        self.emulator.save()
        return self._done(name, self.view(self.repositories[name]))

    def patch(self, name: str, mask: list[str], body: dict) -> dict:
        repository = self._repository(name)
        paths = {re.sub(r"_([a-z])", lambda m: m.group(1).upper(), p.split(".")[0]) for p in mask if p}
        if not paths:
            raise self.error("INVALID_ARGUMENT", "update_mask is required")
        wrong = sorted(paths - MUTABLE)
        if wrong:
            raise self.error(
                "INVALID_ARGUMENT",
                f"update_mask paths {wrong} cannot be updated (kmsKeyName, format and mode are immutable)",
            )
        self._check({"format": repository["format"], **{p: body.get(p) for p in paths}}, creating=False)
        for path in paths:
            if body.get(path) in (None, {}, []):
                repository.pop(path, None)
            else:
                repository[path] = copy.deepcopy(body[path])
        repository["updateTime"] = self.emulator.now()
        self.emulator.save()
        return self.view(repository)

    def set_policy(self, name: str, body: dict) -> dict:
        repository = self._repository(name)
        policy = body.get("policy") or {}
        current = repository.get("_policy") or {"etag": "ACAB"}
        if policy.get("etag") and policy["etag"] != current.get("etag"):
            raise self.error("ABORTED", "There were concurrent policy changes: the etag is not the current one")
        stored = {**copy.deepcopy(policy), "etag": hashlib.sha256(repr(policy).encode()).hexdigest()[:12]}
        repository["_policy"] = stored
        self.emulator.save()
        return copy.deepcopy(stored)

    def _done(self, name: str, response: dict) -> dict:
        location = name.split("/repositories/")[0]
        return {"name": f"{location}/operations/{self.emulator._generated_id()}", "done": True, "response": response}
