"""The build manifest: what an artifact is, and the only thing the stacks read of it.

Importing this module costs nothing (no TensorFlow, no torch), so synth stays fast.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict

MANIFEST_NAME = "manifest.json"
ARTIFACT_SUBDIR = "artifact"
FORMAT_VERSION = 1


class ManifestError(ValueError):
    """No usable artifact where the config says it is."""


class ArtifactFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    """POSIX path inside the artifact folder, as uploaded under the bucket prefix."""
    sha256: str
    size: int


class Band(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    dimensions: int = 0
    """0 for one value per pixel, 1 for an array per pixel (Earth Engine's `dimensions`)."""
    length: int = 1
    """Values per pixel when dimensions is 1."""


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
    source_fingerprint: str
    """Hash of everything the build read; a rebuild with the same fingerprint does no work."""

    @property
    def artifact_root(self) -> str:
        return ARTIFACT_SUBDIR


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
    path.write_text(json.dumps(manifest.model_dump(mode="json"), indent=2, sort_keys=True) + "\n")
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
    sha, files = hash_tree(artifact_dir / ARTIFACT_SUBDIR)
    if sha != manifest.sha256 or files != manifest.files:
        raise ManifestError(
            f"model.artifact_dir: the files in {artifact_dir / ARTIFACT_SUBDIR} do not match "
            f"{MANIFEST_NAME} (sha256 {sha[:12]} on disk, {manifest.sha256[:12]} in the manifest); "
            "rebuild with `nox -s build`"
        )
