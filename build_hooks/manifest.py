"""The build manifest: what an artifact is, and the only thing the stacks read of it.

Artifacts are addressed by content: `<artifact_dir>/<sha256>/artifact/` holds the files and
`<artifact_dir>/<sha256>/manifest.json` describes them; `<artifact_dir>/manifest.json` is a
copy of the current version's manifest. A new build never overwrites another version.

Importing this module costs nothing (no TensorFlow, no torch), so synth stays fast.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, model_validator

MANIFEST_NAME = "manifest.json"
ARTIFACT_SUBDIR = "artifact"
GOLDEN_NAME = "golden.json"
"""The golden tile in the artifact's folder (build_hooks/golden.py)."""
FORMAT_VERSION = 4
SHORT_SHA = 12
"""Hex digits of a sha256 shown to users (and enough to refer to an artifact)."""


class ManifestError(ValueError):
    """No usable artifact where the config says it is."""


class ArtifactFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    """POSIX path inside the artifact folder, as uploaded under the bucket prefix."""
    sha256: str
    size: int


# ee.PixelType's constructors (earthengine-api python/ee/pixeltype.py).
PIXEL_TYPES = ("float", "double", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64")


class Band(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    dimensions: int = 0
    """0 for one value per pixel, 1 for an array per pixel (Earth Engine's `dimensions`)."""
    length: int = 1
    """Values per pixel when dimensions is 1."""
    type: str = "float"
    """The band's `ee.PixelType` (`outputBands` `type`): float (float32, the default), double,
    or an integer type (int8, uint8, int16, uint16, int32, uint32, int64) for a class band
    such as an argmax; the served answer writes the band in this type."""

    @model_validator(mode="after")
    def _shape(self) -> Band:
        if self.dimensions not in (0, 1):
            raise ValueError(f"band {self.name!r}: dimensions {self.dimensions}; allowed: 0 or 1")
        if self.length < 1 or (self.dimensions == 0 and self.length != 1):
            raise ValueError(
                f"band {self.name!r}: length {self.length}; allowed: 1 when dimensions is 0, 1 or more when it is 1"
            )
        if self.type not in PIXEL_TYPES:
            raise ValueError(f"band {self.name!r}: type {self.type!r}; allowed: {', '.join(PIXEL_TYPES)}")
        return self

    @property
    def is_integer(self) -> bool:
        return self.type not in ("float", "double")


class ServingImage(BaseModel):
    """One of our serving images, as built for this artifact: what the stacks upload (by
    digest) and our provider's `eevertex_image` pushes into each target's registry."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    """`ee-serving-<framework>-<device>` (config/images.py)."""
    digest: str
    """`sha256:<64 hex>` of the image manifest: the same bytes in every registry."""
    tag: str
    """The immutable tag it is pushed with."""
    base: str
    """The base image it was built on (its digest, or the local base's)."""
    layout: str
    """The OCI image layout holding it, relative to the repository root (what push copies)."""


class Manifest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    format_version: int = FORMAT_VERSION
    model_name: str
    framework: str
    payload_format: str
    sha256: str
    """Hash of the whole artifact: sha256 over the sorted `<sha256>  <path>` lines of its files."""
    files: tuple[ArtifactFile, ...]
    input_bands: tuple[str, ...]
    output_bands: tuple[Band, ...]
    tile_size: int
    golden_sha256: str
    """sha256 of the artifact's golden.json (build_hooks/golden.py): one tile as Earth Engine
    sends it, the model's answer and the tolerance, which the provider checks a deployment
    against when it takes traffic (`eevertex_traffic_split` `verification`)."""
    version_label: str | None = None
    """`model.version_label`, also stored inside the artifact (so it is part of sha256)."""
    serving_images: tuple[ServingImage, ...] = ()
    """Our serving images built with this artifact, one per framework and device the targets
    use (none where only prebuilt or custom images serve). Not part of sha256: the same
    artifact can be served by a newer image."""

    def serving_image(self, name: str) -> ServingImage | None:
        return next((image for image in self.serving_images if image.name == name), None)

    @property
    def artifact_root(self) -> str:
        """The artifact's folder, relative to artifact_dir."""
        return f"{self.sha256}/{ARTIFACT_SUBDIR}"

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def hash_tree(root: Path) -> tuple[str, tuple[ArtifactFile, ...]]:
    """Hash every file under root, in sorted order, into one artifact hash."""
    files = tuple(
        ArtifactFile(path=p.relative_to(root).as_posix(), sha256=file_sha256(p), size=p.stat().st_size)
        for p in sorted(root.rglob("*"), key=lambda p: p.relative_to(root).as_posix())
        if p.is_file()
    )
    if not files:
        raise ManifestError(f"{root} holds no files")
    listing = "".join(f"{f.sha256}  {f.path}\n" for f in files)
    return hashlib.sha256(listing.encode()).hexdigest(), files


def write_manifest(artifact_dir: Path, manifest: Manifest) -> Path:
    path = artifact_dir / MANIFEST_NAME
    path.write_text(manifest.to_json())
    return path


def read_manifest(artifact_dir: Path) -> Manifest:
    """Load the manifest the build wrote; errors say how to make one."""
    path = artifact_dir / MANIFEST_NAME
    if not path.is_file():
        raise ManifestError(
            f"model.artifact_dir: no {MANIFEST_NAME} in {artifact_dir}; build the artifact first "
            "with `nox -s build` (or `python -m build_hooks <config>`)"
        )
    try:
        manifest = Manifest.model_validate_json(path.read_text())
    except ValueError as error:
        raise ManifestError(f"model.artifact_dir: {path} is not a valid manifest: {error}") from None
    if manifest.format_version != FORMAT_VERSION:
        raise ManifestError(
            f"model.artifact_dir: {path} has format_version {manifest.format_version}; "
            f"allowed: {FORMAT_VERSION} (rebuild with `nox -s build`)"
        )
    return manifest


def verify_artifact(artifact_dir: Path, manifest: Manifest) -> None:
    """Check that the files on disk are the files the manifest names (nothing edited since)."""
    root = artifact_dir / manifest.artifact_root
    if not root.is_dir():
        raise ManifestError(
            f"model.artifact_dir: {root} is missing (artifact {manifest.sha256[:SHORT_SHA]}); "
            "rebuild with `nox -s build`"
        )
    sha, files = hash_tree(root)
    if sha != manifest.sha256 or files != manifest.files:
        raise ManifestError(
            f"model.artifact_dir: the files in {root} do not match "
            f"{MANIFEST_NAME} (sha256 {sha[:12]} on disk, {manifest.sha256[:12]} in the manifest); "
            "rebuild with `nox -s build`"
        )


def built_versions(artifact_dir: Path) -> list[Manifest]:
    """Every artifact version built into artifact_dir (the current one among them)."""
    versions = []
    for path in sorted(artifact_dir.glob(f"*/{MANIFEST_NAME}")):
        try:
            manifest = Manifest.model_validate_json(path.read_text())
        except ValueError:
            continue
        if path.parent.name == manifest.sha256:
            versions.append(manifest)
    return versions


def resolve_sha(artifact_dir: Path, ref: str, field: str = "model.previous.sha256") -> str:
    """A full sha256, or a prefix unique among the versions built in artifact_dir -> the full sha256."""
    if len(ref) == 64:
        return ref
    matches = sorted({m.sha256 for m in built_versions(artifact_dir)})
    found = [sha for sha in matches if sha.startswith(ref)]
    if len(found) == 1:
        return found[0]
    if not found:
        known = ", ".join(sha[:SHORT_SHA] for sha in matches) or "none"
        raise ManifestError(
            f"{field}: no artifact built in {artifact_dir} starts with {ref!r} (built here: {known}); "
            "allowed: a unique prefix of one of those, or the full 64-digit sha256 of an artifact built elsewhere"
        )
    raise ManifestError(
        f"{field}: {ref!r} is ambiguous in {artifact_dir}: {', '.join(sha[:SHORT_SHA] for sha in found)}; "
        "allowed: a longer prefix that names one of them"
    )
