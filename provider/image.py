"""`eevertex_image`: one of our serving images in a registry, pushed by digest from the OCI
image layout the build wrote, so that Terraform orders it (the registry stack, then the
image, then the model version that names it) and the plan shows the exact digest.

The push follows the OCI distribution spec (v1.1, "Push": a blob's `HEAD`, then `POST
/v2/<name>/blobs/uploads/` and a monolithic `PUT <location>?digest=`; the manifest's `PUT
/v2/<name>/manifests/<tag>`), which Artifact Registry speaks; the blobs go as they are in the
layout, so every registry holds the same digest. Authentication: Artifact Registry's docker
token exchange (the registry answers 401 with `WWW-Authenticate: Bearer realm=...`; the token
comes from the realm for the user `oauth2accesstoken` and an access token from the provider's
credentials). Read asks the registry for the manifest by digest, so an image deleted from
the registry shows as one to push again. Delete only forgets: an image is never deleted by
Terraform (the repository's cleanup policy removes the unused ones).
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

from tf.iface import CreateContext, DeleteContext, ImportContext, PlanContext, ReadContext, State, UpdateContext
from tf.schema import Schema
from tf.types import String
from tf.utils import Diagnostics

from provider.client import log
from provider.common import ProviderResource, attr, known

_S = String()
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
# <host>/<path>: a registry host (with an optional port) and a repository path.
REPOSITORY = re.compile(r"(?P<host>[a-z0-9.-]+(:[0-9]+)?)/(?P<path>[a-z0-9._/-]+)")
MANIFEST_TYPES = ("application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json",
                  "application/vnd.oci.image.index.v1+json")
_ATTRIBUTES = [
    attr("repository", _S, kind="required", replace=True,
         doc="`<host>/<project>/<repository>`: the target's Artifact Registry repository, e.g. "
             "`us-central1-docker.pkg.dev/acme-geo-dev/ee-serving`."),
    attr("name", _S, kind="required", replace=True, doc="The image's name in the repository, e.g. `ee-serving-pytorch-cpu`."),
    attr("digest", _S, kind="required", replace=True, doc="`sha256:<64 hex>` of the image manifest, as built."),
    attr("tag", _S, kind="required", replace=True, doc="The immutable tag pushed with it (`sha256-<12 hex>`)."),
    attr("source", _S, kind="required",
         doc="The OCI image layout the build wrote (a folder; relative to the stack's folder). Only read by a push."),
    attr("id", _S, kind="computed", doc="`<repository>/<name>@<digest>`: the reference a model version uploads."),
]


class RegistryError(Exception):
    pass


class Registry:
    """The registry end of the OCI distribution API, for one provider (thread-safe)."""

    def __init__(self, endpoint: str | None, token_source):
        self.endpoint = endpoint.rstrip("/") if endpoint else None
        self.token_source = token_source
        self._tokens: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def _url(self, host: str, path: str) -> str:
        return f"{self.endpoint or 'https://' + host}{path}"

    def request(self, method: str, host: str, path: str, scope: str, *, url: str | None = None, **kwargs):
        import requests

        headers = dict(kwargs.pop("headers", {}))
        token = self._tokens.get((host, scope))
        if token:
            headers["Authorization"] = f"Bearer {token}"
        response = requests.request(method, url or self._url(host, path), headers=headers, timeout=600, **kwargs)
        if response.status_code == 401 and "www-authenticate" in response.headers:
            self._tokens[(host, scope)] = self._token(response.headers["www-authenticate"], scope)
            headers["Authorization"] = f"Bearer {self._tokens[(host, scope)]}"
            data = kwargs.get("data")
            if hasattr(data, "seek"):
                data.seek(0)
            response = requests.request(method, url or self._url(host, path), headers=headers, timeout=600, **kwargs)
        return response

    def _token(self, challenge: str, scope: str) -> str:
        """Docker's token authentication (distribution's docs/spec/auth/token.md), as Artifact
        Registry implements it: the realm gives a token for `oauth2accesstoken` and an access token."""
        import requests

        fields = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        if not challenge.lower().startswith("bearer") or "realm" not in fields:
            raise RegistryError(f"the registry asks for an authentication this provider does not speak: {challenge}")
        access = self.token_source()
        if not access:
            raise RegistryError("the registry needs credentials, and the provider has none (credentials = \"none\")")
        params = {"scope": scope, **({"service": fields["service"]} if "service" in fields else {})}
        answer = requests.get(fields["realm"], params=params, auth=("oauth2accesstoken", access), timeout=60)
        if answer.status_code != 200:
            raise RegistryError(f"the registry's token service ({fields['realm']}) answered HTTP {answer.status_code}: "
                                f"{answer.text[:300]}")
        body = answer.json()
        return body.get("token") or body.get("access_token")

    def exists(self, host: str, path: str, digest: str) -> bool:
        response = self.request("HEAD", host, f"/v2/{path}/manifests/{digest}", f"repository:{path}:pull",
                                headers={"Accept": ",".join(MANIFEST_TYPES)})
        if response.status_code == 404:
            return False
        if response.status_code != 200:
            raise RegistryError(f"HEAD {path}@{digest}: HTTP {response.status_code}")
        return True

    def push(self, host: str, path: str, layout: Path, digest: str, tag: str) -> None:
        scope = f"repository:{path}:pull,push"
        blobs = layout / "blobs" / "sha256"
        manifest_bytes = (blobs / digest.split(":", 1)[1]).read_bytes()
        manifest = json.loads(manifest_bytes)
        for blob in [manifest["config"], *manifest.get("layers", [])]:
            self._push_blob(host, path, scope, blob["digest"], blobs / blob["digest"].split(":", 1)[1])
        media_type = manifest.get("mediaType") or MANIFEST_TYPES[0]
        response = self.request("PUT", host, f"/v2/{path}/manifests/{tag}", scope, data=manifest_bytes,
                                headers={"Content-Type": media_type})
        if response.status_code not in (200, 201):
            raise RegistryError(f"PUT {path}:{tag}: HTTP {response.status_code}: {response.text[:300]}")
        pushed = response.headers.get("Docker-Content-Digest")
        if pushed and pushed != digest:
            raise RegistryError(f"the registry stored {path}:{tag} as {pushed}, not {digest}")

    def _push_blob(self, host: str, path: str, scope: str, digest: str, file: Path) -> None:
        if self.request("HEAD", host, f"/v2/{path}/blobs/{digest}", scope).status_code == 200:
            return
        started = self.request("POST", host, f"/v2/{path}/blobs/uploads/", scope)
        if started.status_code != 202 or "Location" not in started.headers:
            raise RegistryError(f"starting the upload of {digest[:19]} to {path}: HTTP {started.status_code}: "
                                f"{started.text[:300]}")
        location = started.headers["Location"]
        if location.startswith("/"):
            location = self._url(host, location)
        log(f"pushing {digest[:19]} ({file.stat().st_size / 1e6:.0f} MB) to {host}/{path}")
        with file.open("rb") as data:
            done = self.request("PUT", host, "", scope, url=location, params={"digest": digest}, data=data,
                                headers={"Content-Type": "application/octet-stream",
                                         "Content-Length": str(file.stat().st_size)})
        if done.status_code != 201:
            raise RegistryError(f"uploading {digest[:19]} to {path}: HTTP {done.status_code}: {done.text[:300]}")


def _parts(state: State) -> tuple[str, str]:
    match = REPOSITORY.fullmatch(state["repository"])
    return match["host"], f"{match['path']}/{state['name']}"


class Image(ProviderResource):
    @classmethod
    def get_name(cls) -> str:
        return "image"

    @classmethod
    def get_schema(cls) -> Schema:
        return Schema(version=0, attributes=_ATTRIBUTES, description=(
            "A serving image pushed by digest from the build's OCI image layout into a registry (Artifact "
            "Registry). Deleting it only forgets it: images are never deleted by Terraform."))

    @property
    def registry(self) -> Registry:
        return self.provider.registry

    def validate(self, diags: Diagnostics, type_name: str, config: State) -> None:
        super().validate(diags, type_name, config)
        if known(config.get("repository")) and not REPOSITORY.fullmatch(config["repository"]):
            diags.add_error(f"repository: {config['repository']!r}; allowed: '<host>/<project>/<repository>', "
                            "e.g. 'us-central1-docker.pkg.dev/acme-geo-dev/ee-serving'", "", path=["repository"])
        if known(config.get("digest")) and not DIGEST.fullmatch(config["digest"]):
            diags.add_error(f"digest: {config['digest']!r}; allowed: 'sha256:' and 64 lowercase hex digits", "",
                            path=["digest"])

    def plan(self, ctx: PlanContext, current: State | None, planned: State) -> State:
        if all(known(planned.get(k)) for k in ("repository", "name", "digest")):
            planned["id"] = f"{planned['repository']}/{planned['name']}@{planned['digest']}"
        return planned

    def create(self, ctx: CreateContext, planned: State) -> State | None:
        layout = Path(planned["source"])
        index = layout / "index.json"
        if not index.is_file() or planned["digest"] not in index.read_text():
            ctx.diagnostics.add_error(
                f"source: {layout} does not hold {planned['digest']}: the image is not built here",
                "Build it (`nox -s build`), which writes the layout the model stack names.", path=["source"])
            return None
        host, path = _parts(planned)
        try:
            if not self.registry.exists(host, path, planned["digest"]):
                self.registry.push(host, path, layout, planned["digest"], planned["tag"])
        except (RegistryError, OSError) as error:
            ctx.diagnostics.add_error(f"pushing {path}@{planned['digest'][:19]} to {host}: {error}", "",
                                      path=["repository"])
            return None
        return {**planned, "id": f"{planned['repository']}/{planned['name']}@{planned['digest']}"}

    def read(self, ctx: ReadContext, current: State) -> State | None:
        host, path = _parts(current)
        try:
            return current if self.registry.exists(host, path, current["digest"]) else None
        except RegistryError as error:
            ctx.diagnostics.add_warning(f"could not check {path}@{current['digest'][:19]}: {error}", "")
            return current

    def update(self, ctx: UpdateContext, current: State, planned: State) -> State | None:
        # Only `source` changes in place: where the layout lies here, not what is pushed.
        return {**planned, "id": current["id"]}

    def delete(self, ctx: DeleteContext, current: State) -> None:
        log(f"{current['id']}: kept in the registry (its cleanup policy removes images no model version uses)")
        return None

    def import_(self, ctx: ImportContext, id: str) -> State | None:
        match = re.fullmatch(r"(?P<repository>.+)/(?P<name>[^/@]+)@(?P<digest>sha256:[0-9a-f]{64})", id)
        if not match or not REPOSITORY.fullmatch(match["repository"]):
            ctx.diagnostics.add_error(f"cannot import {id!r}", "Give <host>/<project>/<repository>/<name>@sha256:<digest>.")
            return None
        state = {**match.groupdict(), "tag": None, "source": None, "id": id}
        return self.read(ctx, state)
