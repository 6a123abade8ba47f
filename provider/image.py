"""`eevertex_image`: one of our serving images in a registry, pushed by digest from the OCI
image layout the build wrote, so that Terraform orders it (the registry stack, then the
image, then the model version that names it) and the plan shows the exact digest.

The push (`registry.py`) sends the blobs as they are in the layout, so every registry holds
the same digest. Read asks the registry for the manifest by digest, so an image deleted from
the registry shows as one to push again. Delete only forgets: an image is never deleted by
Terraform (the repository's cleanup policy removes the unused ones).
"""

from __future__ import annotations

import re
from pathlib import Path

from tf.iface import (
    CreateContext,
    DeleteContext,
    ImportContext,
    PlanContext,
    ReadContext,
    State,
    UpdateContext,
)
from tf.types import String
from tf.utils import Diagnostics

from provider.client import log
from provider.common import ProviderResource, attr, known
from provider.registry import Registry, RegistryError

_S = String()
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
# <host>/<path>: a registry host (with an optional port) and a repository path.
REPOSITORY = re.compile(r"(?P<host>[a-z0-9.-]+(:[0-9]+)?)/(?P<path>[a-z0-9._/-]+)")
_ATTRIBUTES = [
    attr(
        "repository",
        _S,
        kind="required",
        replace=True,
        doc="`<host>/<project>/<repository>`: the target's Artifact Registry repository, e.g. "
        "`us-central1-docker.pkg.dev/acme-geo-dev/ee-serving`.",
    ),
    attr(
        "name",
        _S,
        kind="required",
        replace=True,
        doc="The image's name in the repository, e.g. `ee-serving-pytorch-cpu`.",
    ),
    attr("digest", _S, kind="required", replace=True, doc="`sha256:<64 hex>` of the image manifest, as built."),
    attr("tag", _S, kind="required", replace=True, doc="The immutable tag pushed with it (`sha256-<12 hex>`)."),
    attr(
        "source",
        _S,
        kind="required",
        doc="The OCI image layout the build wrote (a folder; relative to the stack's folder). Only read by a push.",
    ),
    attr("id", _S, kind="computed", doc="`<repository>/<name>@<digest>`: the reference a model version uploads."),
]


def _parts(state: State) -> tuple[str, str]:
    match = REPOSITORY.fullmatch(state["repository"])
    if match is None:  # validate refuses such a repository before any plan
        raise ValueError(f"repository: {state['repository']!r}; allowed: '<host>/<project>/<repository>'")
    return match["host"], f"{match['path']}/{state['name']}"


class Image(ProviderResource):
    EXAMPLE = """
resource "eevertex_image" "pytorch_cpu" {
  repository = "us-central1-docker.pkg.dev/acme-geo-dev/ee-serving"
  name       = "ee-serving-pytorch-cpu"
  digest     = "sha256:<64 hex digits, as the build's manifest records it>"
  tag        = "sha256-<its first 12 hex digits>"
  source     = "images/ee-serving-pytorch-cpu"   # the OCI image layout the build wrote
}
"""

    IMPORT = """
An image already in the registry, by its reference: `terraform import eevertex_image.pytorch_cpu
us-central1-docker.pkg.dev/acme-geo-dev/ee-serving/ee-serving-pytorch-cpu@sha256:<digest>` (or an
`import` block with that `id`). Delete never removes an image from the registry.
"""

    NAME = "image"
    DESCRIPTION = (
        "A serving image pushed by digest from the build's OCI image layout into a registry (Artifact "
        "Registry). Deleting it only forgets it: images are never deleted by Terraform."
    )
    ATTRIBUTES = _ATTRIBUTES

    @property
    def registry(self) -> Registry:
        return self.provider.registry

    def validate(self, diags: Diagnostics, type_name: str, config: State) -> None:
        super().validate(diags, type_name, config)
        if known(config.get("repository")) and not REPOSITORY.fullmatch(config["repository"]):
            diags.add_error(
                f"repository: {config['repository']!r}; allowed: '<host>/<project>/<repository>', "
                "e.g. 'us-central1-docker.pkg.dev/acme-geo-dev/ee-serving'",
                "",
                path=["repository"],
            )
        if known(config.get("digest")) and not DIGEST.fullmatch(config["digest"]):
            diags.add_error(
                f"digest: {config['digest']!r}; allowed: 'sha256:' and 64 lowercase hex digits", "", path=["digest"]
            )

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
                "Build it (`nox -s build`), which writes the layout the model stack names.",
                path=["source"],
            )
            return None
        host, path = _parts(planned)
        try:
            if not self.registry.exists(host, path, planned["digest"]):
                self.registry.push(host, path, layout, planned["digest"], planned["tag"])
        except (RegistryError, OSError) as error:
            ctx.diagnostics.add_error(
                f"pushing {path}@{planned['digest'][:19]} to {host}: {error}", "", path=["repository"]
            )
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

    def import_(self, ctx: ImportContext, id: str) -> State | None:
        match = re.fullmatch(r"(?P<repository>.+)/(?P<name>[^/@]+)@(?P<digest>sha256:[0-9a-f]{64})", id)
        if not match or not REPOSITORY.fullmatch(match["repository"]):
            ctx.diagnostics.add_error(
                f"cannot import {id!r}", "Give <host>/<project>/<repository>/<name>@sha256:<digest>."
            )
            return None
        state = {**match.groupdict(), "tag": None, "source": None, "id": id}
        return self.read(ctx, state)
