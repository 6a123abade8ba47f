"""Build what a rollout config serves: the artifact (export, check, hash, kept by its hash),
then our serving images for the targets that use them (`serving.image`), each recorded by
digest in the manifest.

Every build exports afresh (into a temporary folder, in a fresh process) and hashes the
result: artifacts are deterministic, so the hash says whether anything that determines the
artifact changed — weights, the factory's modules, files it reads, the config's model
fields, the handler, library versions — with nothing to list or forget. Only the copy into
`<artifact_dir>/<sha256>/` is skipped when that version is already there, intact. Images are
deterministic too, and rebuilt only when what goes into them changes.

Where a target names a Vertex AI prebuilt image, the artifact is also loaded and run under
that image's framework version (`build_hooks.runtimes`) before the build accepts it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from build_hooks.manifest import (
    ARTIFACT_SUBDIR,
    GOLDEN_NAME,
    MANIFEST_NAME,
    SHORT_SHA,
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
# Where a failed export's traceback goes (in artifact_dir), named in the error line.
EXPORT_LOG = "build-error.log"


class BuildError(RuntimeError):
    """The model could not be exported or failed its check; the message says why."""


def build(rollout: RolloutConfig, *, log=print) -> Manifest:
    """Export the model, check it, and make it the current artifact of rollout.artifact_dir."""
    model = rollout.model
    root = rollout.artifact_dir
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=".export-") as tmp:
        staging = Path(tmp) / "version"
        log(f"build: exporting and checking {model.name} ({model.framework}, {model.payload_format.value}) ...")
        info = _export_in_subprocess(rollout, staging / ARTIFACT_SUBDIR)
        if "prebuilt" in rollout.image_kinds:
            from build_hooks.runtimes import check_prebuilt

            for line in check_prebuilt(
                rollout, staging / ARTIFACT_SUBDIR, info["input_bands"], info["output_bands"], log=log
            ):
                log(f"build: ok {line}")
        for line in info["checked"]:
            log(f"build: ok {line}")
        for line in info["warnings"]:
            log(f"build: WARNING {line}")
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
            golden_sha256=next(f.sha256 for f in files if f.path == GOLDEN_NAME),
            version_label=model.version_label,
        )
        version = root / sha
        if _intact(root, manifest):
            stored = "already built"
        else:
            shutil.rmtree(version, ignore_errors=True)
            write_manifest(staging, manifest)
            staging.rename(version)
            stored = f"wrote {version}"
    images = build_images(rollout, log=log)
    if images:
        manifest = manifest.model_copy(update={"serving_images": images})
        if read_manifest(version) != manifest:
            _write_atomically(version / MANIFEST_NAME, manifest.to_json())
    previous = _current_sha(root)
    try:
        current = read_manifest(root)
    except ManifestError:
        current = None
    if current != manifest:
        _write_atomically(root / MANIFEST_NAME, manifest.to_json())
    change = "unchanged" if previous == sha else f"was {previous[:SHORT_SHA]}" if previous else "first build"
    log(f"build: {model.name} sha256 {sha[:SHORT_SHA]} ({stored}; current artifact {change})")
    return manifest


def layouts(rollout: RolloutConfig) -> list[str]:
    """What the artifact must hold for the images its targets use (build_hooks.export)."""
    kinds = rollout.image_kinds
    if rollout.model.framework == "pytorch":
        wanted = ["program"] + (["mar"] if kinds - {"own"} else [])
    else:
        wanted = (["versioned"] if "own" in kinds else []) + (["root"] if kinds - {"own"} else [])
    return wanted


def build_images(rollout: RolloutConfig, *, log=print) -> tuple:
    """Our serving image for every framework and device the targets use it for."""
    wanted = {}
    for target in rollout.targets:
        image = rollout.own_image(target)
        if image is not None:
            wanted[image.name] = image
    if not wanted:
        return ()
    from serving.image import ImageError, build_image

    try:
        return tuple(build_image(wanted[name], log=log) for name in sorted(wanted))
    except ImageError as error:
        raise BuildError(str(error)) from None


def _intact(root: Path, manifest: Manifest) -> bool:
    """The version is there with these files (whatever images were recorded with it)."""
    try:
        built = read_manifest(root / manifest.sha256).model_copy(update={"serving_images": ()})
        if built != manifest:
            return False
        verify_artifact(root, manifest)
        return True
    except ManifestError:
        return False


def _current_sha(root: Path) -> str | None:
    try:
        return read_manifest(root).sha256
    except ManifestError:
        return None


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    os.replace(partial, path)


def _export_in_subprocess(rollout: RolloutConfig, out_dir: Path) -> dict:
    """Export in a fresh interpreter: TensorFlow names traced functions with process-wide
    counters, so only a fresh process gives the same SavedModel bytes every time; and the
    user's modules are imported anew, as they are on disk now."""
    model = rollout.model
    base_dir = rollout.path.parent if rollout.path else Path.cwd()
    request = {
        "source": model.source,
        "base_dir": str(base_dir),
        "framework": model.framework,
        "payload_format": model.payload_format.value,
        "tile_size": model.tile_size,
        "input_overlap": model.input_overlap,
        "output_tile_size": model.answer_size,
        "input_shapes": model.input_shapes,
        "max_payload_bytes": model.max_payload_bytes,
        "version_label": model.version_label,
        "out_dir": str(out_dir),
        "layouts": layouts(rollout),
    }
    env = {
        **os.environ,
        "PYTHONHASHSEED": "0",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "CUDA_VISIBLE_DEVICES": "",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    root = str(BUILD_HOOKS.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-m", "build_hooks.export", json.dumps(request)],
        env=env,
        capture_output=True,
        text=True,
        cwd=str(base_dir),
    )
    for line in result.stderr.splitlines():
        if line.startswith("build:"):
            print(line, file=sys.stderr)
    last = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    if result.returncode == 2 and last.startswith("{"):
        raise BuildError(json.loads(last)["error"])
    if result.returncode != 0:
        # The user's factory (or code it imports) raised: its traceback is theirs to read, in a
        # file; the error line says what was raised and where the rest is.
        log = rollout.artifact_dir / EXPORT_LOG
        log.write_text(result.stderr)
        raised = _raised(result.stderr)
        hint = ""
        if raised.startswith("ModuleNotFoundError"):
            hint = f" (install the missing package where the build runs: {sys.executable})"
        raise BuildError(
            f"build: exporting {model.name} from model.source {model.source} failed: {raised}{hint}; "
            f"the traceback is in {log}"
        )
    log_file = rollout.artifact_dir / EXPORT_LOG
    log_file.unlink(missing_ok=True)
    return json.loads(last)


def _raised(stderr: str) -> str:
    """The `Type: message` line that ends a Python traceback (else the last line)."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Warning)\b", line):
            return line.strip()
    return lines[-1].strip() if lines else "no output"
