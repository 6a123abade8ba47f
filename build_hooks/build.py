"""Build the artifact for a rollout config: export, hash, manifest — or nothing, if the
inputs have not changed since the last build."""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from build_hooks.manifest import (
    ARTIFACT_SUBDIR,
    Band,
    Manifest,
    ManifestError,
    hash_tree,
    read_manifest,
    verify_artifact,
    write_manifest,
)
from config.rollout import RolloutConfig

BUILD_HOOKS = Path(__file__).resolve().parent
# Limits the handler enforces (a 256x256 tile of a few bands is far below them).
MAX_INSTANCES = 64
MAX_PIXELS = 1024 * 1024
TOOL_PACKAGES = ("torch", "tensorflow-cpu", "keras", "torch-model-archiver", "numpy")


def _versions() -> dict[str, str]:
    versions = {}
    for name in TOOL_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def _source_files(source: str) -> list[Path]:
    """Files whose content decides the artifact: our build code, and the user's module."""
    files = sorted(p for p in BUILD_HOOKS.glob("*.py"))
    if not source.startswith("builtin:"):
        spec = importlib.util.find_spec(source.partition(":")[0])
        if spec is None or spec.origin is None:
            raise ValueError(f"model.source: cannot find module {source.partition(':')[0]!r}")
        files.append(Path(spec.origin))
    return files


def source_fingerprint(rollout: RolloutConfig) -> str:
    model = rollout.model
    digest = hashlib.sha256()
    inputs = {
        "name": model.name,
        "framework": model.framework,
        "source": model.source,
        "payload_format": model.payload_format.value,
        "tile_size": model.tile_size,
        "input_overlap": model.input_overlap,
        "output_tile_size": model.answer_size,
        "input_shapes": model.input_shapes,
        "versions": _versions(),
    }
    digest.update(json.dumps(inputs, sort_keys=True).encode())
    for path in _source_files(model.source):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def up_to_date(rollout: RolloutConfig, fingerprint: str) -> Manifest | None:
    """The existing manifest, if it was built from exactly these inputs and is intact."""
    try:
        manifest = read_manifest(rollout.artifact_dir)
        if manifest.source_fingerprint != fingerprint:
            return None
        verify_artifact(rollout.artifact_dir, manifest)
    except ManifestError:
        return None
    return manifest


def build(rollout: RolloutConfig, *, force: bool = False, log=print) -> Manifest:
    """Export the model into rollout.artifact_dir and return its manifest."""
    model = rollout.model
    fingerprint = source_fingerprint(rollout)
    if not force and (manifest := up_to_date(rollout, fingerprint)):
        log(f"build: {model.name} is up to date (sha256 {manifest.sha256[:12]}), nothing to do")
        return manifest

    target = rollout.artifact_dir
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}-") as tmp:
        staging = Path(tmp) / "out"
        log(f"build: exporting {model.name} ({model.framework}, {model.payload_format.value}) ...")
        info = _export_in_subprocess(rollout, staging / ARTIFACT_SUBDIR)
        sha, files = hash_tree(staging / ARTIFACT_SUBDIR)
        manifest = Manifest(
            model_name=model.name,
            framework=model.framework,
            payload_format=model.payload_format.value,
            sha256=sha,
            files=files,
            input_bands=tuple(info["input_bands"]),
            output_bands=tuple(Band(**b) for b in info["output_bands"]),
            tile_size=model.tile_size,
            source_fingerprint=fingerprint,
        )
        write_manifest(staging, manifest)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    log(f"build: wrote {target} (sha256 {manifest.sha256[:12]}, {len(manifest.files)} files)")
    return manifest


def _export_in_subprocess(rollout: RolloutConfig, out_dir: Path) -> dict:
    """Export in a fresh interpreter: TensorFlow names traced functions with process-wide
    counters, so only a fresh process gives the same SavedModel bytes every time."""
    model = rollout.model
    request = {
        "source": model.source,
        "framework": model.framework,
        "payload_format": model.payload_format.value,
        "tile_size": model.tile_size,
        "input_overlap": model.input_overlap,
        "output_tile_size": model.answer_size,
        "input_shapes": model.input_shapes,
        "out_dir": str(out_dir),
        "max_instances": MAX_INSTANCES,
        "max_pixels": MAX_PIXELS,
    }
    env = {**os.environ, "PYTHONHASHSEED": "0", "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    root = str(BUILD_HOOKS.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-m", "build_hooks.export", json.dumps(request)],
        env=env,
        capture_output=True,
        text=True,
        cwd=str(rollout.path.parent if rollout.path else Path.cwd()),
    )
    if result.returncode != 0:
        raise RuntimeError(f"build: export of {model.name} failed:\n{result.stderr.strip()}")
    for line in result.stderr.splitlines():
        if line.startswith("build:"):
            print(line, file=sys.stderr)
    return json.loads(result.stdout.strip().splitlines()[-1])
