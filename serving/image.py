"""Build our serving images reproducibly, keep them as OCI image layouts, and push them by digest.

    build_image(OWN_IMAGES[("pytorch", "cpu")]) -> ServingImage(name, digest, tag, base, layout)
    push(layout, "127.0.0.1:5000/acme-geo-dev/ee-serving/ee-serving-pytorch-cpu", tag, digest)

Reproducible: the base is pinned by digest, every wheel by sha256 (serving/requirements/*.txt,
installed with --require-hashes from a wheelhouse filled here), and the builder fixes every
timestamp (`buildah build --timestamp 0`; byte-compiled files are hash-based through
SOURCE_DATE_EPOCH). The same inputs give the same image digest, so a rebuild never makes
Terraform plan a change; an image whose inputs are unchanged is not rebuilt at all.

Builders, the first found on PATH (or `EEV_OCI_BUILDER`): buildah (chroot isolation, which
needs no daemon), podman (the same engine), docker (BuildKit with rewrite-timestamp; not
tried on this project's machines, which run no Docker engine). The stacks push the layouts
(our provider's `eevertex_image`, blobs as they are: every registry holds the same digest);
`push()` is the same by hand, with skopeo.

Base images: the Containerfile's pinned `BASE` where it can be pulled; where it cannot (an
offline machine) a local stand-in built from Debian bookworm by mmdebstrap, said so in the
output; the image's digest then differs from one built on the pinned base.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVING = ROOT / "serving"
REQUIREMENTS = SERVING / "requirements"
# What each framework's image takes from serving/ (besides its Containerfile and lock).
IMAGE_FILES = {
    "pytorch": ("__init__.py", "codec.py", "model_server.py", "pytorch_server.py"),
    "tensorflow": ("tensorflow-entrypoint.sh",),
}
DEBIAN_SUITE = "bookworm"
BUILDERS = ("buildah", "podman", "docker")


class ImageError(RuntimeError):
    """An image could not be built or pushed; the message says why and what to install."""


def images_dir() -> Path:
    """Where images are kept (OCI layouts, the wheelhouse, logs): $EEV_IMAGES_DIR or build/images."""
    return Path(os.environ.get("EEV_IMAGES_DIR") or ROOT / "build" / "images").resolve()


# -- the builder ---------------------------------------------------------------------


@dataclass(frozen=True)
class Builder:
    name: str
    path: str
    version: str


def builder() -> Builder:
    """The OCI builder to use: $EEV_OCI_BUILDER, else the first of buildah, podman, docker."""
    wanted = os.environ.get("EEV_OCI_BUILDER")
    for name in [wanted] if wanted else BUILDERS:
        path = shutil.which(name)
        if path:
            done = subprocess.run([path, "--version"], capture_output=True, text=True)
            return Builder(name, path, done.stdout.strip().splitlines()[0] if done.stdout.strip() else "unknown")
    if wanted:
        raise ImageError(f"EEV_OCI_BUILDER={wanted}: not on PATH; allowed: {', '.join(BUILDERS)}")
    raise ImageError(
        "building our serving image needs an OCI builder: none of buildah, podman, docker is on PATH "
        "(Debian/Ubuntu: `sudo apt-get install buildah`); or serve with a Vertex AI prebuilt image "
        "(model.serving_image) until 2027-01-14"
    )


def _run(argv: list[str], log_file: Path, *, timeout: float | None = None, env: dict | None = None) -> str:
    """Run a command, its output appended to log_file; its stdout, or ImageError with the tail."""
    with log_file.open("a") as log:
        log.write(f"\n$ {' '.join(argv)}\n")
        log.flush()
        try:
            done = subprocess.run(
                argv, stdout=subprocess.PIPE, stderr=log, text=True, timeout=timeout, env={**os.environ, **(env or {})}
            )
        except subprocess.TimeoutExpired:
            raise ImageError(f"{argv[0]} {argv[1]} did not finish in {timeout:.0f}s; see {log_file}") from None
        log.write(done.stdout)
    if done.returncode:
        tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-15:])
        raise ImageError(f"{' '.join(argv[:2])} failed (exit {done.returncode}); see {log_file}:\n{tail}")
    return done.stdout


# -- bases -------------------------------------------------------------------------------


def _pullable(tool: Builder, image: str, log_file: Path) -> bool:
    try:
        _run([tool.path, "pull", "--quiet", image], log_file, timeout=900)
    except ImageError:
        return False
    return True


def _tag_digest(image: str, log_file: Path) -> str | None:
    """The registry's digest for a tag (skopeo inspect), or None where it cannot be asked."""
    skopeo = shutil.which("skopeo")
    if not skopeo:
        return None
    try:
        return json.loads(_run([skopeo, "inspect", "--no-tags", f"docker://{image}"], log_file, timeout=120))["Digest"]
    except (ImageError, ValueError, KeyError):
        return None


def local_debian_base(tool: Builder, log_file: Path, log=print) -> str:
    """A Debian bookworm base with Python 3.11 made here with mmdebstrap (minbase, python3,
    python3-venv, ca-certificates), as `localhost/ee-serving-base:bookworm-<tar sha12>`;
    made once and kept. mmdebstrap's tarball is reproducible (SOURCE_DATE_EPOCH), so the
    same Debian packages give the same base on any machine."""
    folder = images_dir() / "base"
    folder.mkdir(parents=True, exist_ok=True)
    tarball = folder / f"{DEBIAN_SUITE}.tar"
    if not tarball.exists():
        mmdebstrap = shutil.which("mmdebstrap")
        if not mmdebstrap:
            raise ImageError(
                "the pinned base image cannot be pulled here, and mmdebstrap is not on PATH to make a "
                "Debian base locally (`sudo apt-get install mmdebstrap`)"
            )
        log(f"build: making a Debian {DEBIAN_SUITE} base with mmdebstrap (once; about a minute) ...")
        partial = tarball.with_suffix(".partial")
        _run(
            [
                mmdebstrap,
                "--format=tar",
                "--variant=minbase",
                "--include=python3,python3-venv,ca-certificates",
                DEBIAN_SUITE,
                str(partial),
            ],
            log_file,
            env={"SOURCE_DATE_EPOCH": "0"},
        )
        partial.rename(tarball)
    digest = _file_sha256(tarball)
    name = f"localhost/ee-serving-base:{DEBIAN_SUITE}-{digest[:12]}"
    if not image_exists(tool, name):
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            context = Path(tmp)
            os.link(tarball, context / "base.tar")
            (context / "Containerfile").write_text('FROM scratch\nADD base.tar /\nCMD ["/usr/bin/python3"]\n')
            _build(tool, context, name, {}, log_file)
    return name


def image_exists(tool: Builder, name: str) -> bool:
    """Whether the builder's own store holds an image by this name."""
    argv = (
        [tool.path, "image", "inspect", name]
        if tool.name == "docker"
        else [tool.path, "inspect", "--type", "image", name]
    )
    return subprocess.run(argv, capture_output=True).returncode == 0


def resolve_base(tool: Builder, image, log_file: Path, log=print) -> tuple[str, str | None]:
    """(base to build on, a note on why it is not the production base or None).

    $EEV_SERVING_BASE names one (`local` for the local stand-in); else the image's pinned
    production base when it can be pulled (a tag without a digest is resolved and the digest
    printed, to be pinned in config/images.py); else the local stand-in: Debian bookworm
    (PyTorch), or Debian with our TensorFlow Serving stand-in (TensorFlow)."""
    wanted = os.environ.get("EEV_SERVING_BASE")
    if wanted and wanted != "local":
        return wanted, None
    pinned = image.base
    if not wanted:
        if "@sha256:" not in pinned:
            digest = _tag_digest(pinned, log_file)
            if digest:
                log(f"build: {pinned} is {digest}: pin it in config/images.py ({pinned}@{digest})")
                pinned = f"{pinned}@{digest}"
        if "@sha256:" in pinned and _pullable(tool, pinned, log_file):
            return pinned, None
    note = (
        f"build: {image.base.split('@')[0]} cannot be pulled here (see {_relative(log_file)}); building on a "
        "local stand-in base instead, so the digest differs from an image built on the production base"
    )
    if image.framework == "tensorflow":
        return local_tf_serving_base(tool, log_file, log), note
    return local_debian_base(tool, log_file, log), note


def _base_identity(tool: Builder, base: str) -> str:
    """What the base is, for the inputs hash: its pinned digest, or a local image's ID."""
    if "@sha256:" in base:
        return base
    argv = (
        [tool.path, "image", "inspect", "--format", "{{.Id}}", base]
        if tool.name == "docker"
        else [tool.path, "inspect", "--type", "image", "--format", "{{.FromImageID}}", base]
    )
    done = subprocess.run(argv, capture_output=True, text=True)
    return f"{base}@{done.stdout.strip()}"


# -- building ----------------------------------------------------------------------------


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_file(image) -> Path:
    """The image's requirement lock (none for TensorFlow Serving, which brings its own)."""
    return REQUIREMENTS / f"{image.framework}-{image.device}.txt"


def locked_wheels(lock: Path) -> dict[tuple[str, str], str]:
    """(name, version) -> sha256 of every package a lock pins."""
    text = lock.read_text()
    return {
        (_canonical(n), v): h
        for n, v, h in re.findall(r"(?m)^([A-Za-z0-9_.-]+)==(\S+) \\\n\s+--hash=sha256:([0-9a-f]{64})", text)
    }


def fill_wheelhouse(lock: Path, log_file: Path, log=print) -> list[Path]:
    """The lock's wheels, downloaded once into the shared wheelhouse and checked by hash."""
    if not lock.exists():
        return []
    house = images_dir() / "wheels"
    house.mkdir(parents=True, exist_ok=True)
    wanted = locked_wheels(lock)
    found = _wheels_in(house, wanted)
    if len(found) < len(wanted):
        log(
            f"build: downloading the {len(wanted) - len(found)} wheels {lock.name} pins that are not in {house} yet "
            "(checked by sha256) ..."
        )
        argv = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--require-hashes",
            "--disable-pip-version-check",
            "--progress-bar",
            "off",
            "-d",
            str(house),
            "-r",
            str(lock),
        ]
        try:
            _run(argv, log_file)
        except ImageError:
            if "+cpu" not in lock.read_text():
                raise
            # torch's CPU build is on PyTorch's own index, not PyPI.
            _run(argv + ["--extra-index-url", "https://download.pytorch.org/whl/cpu"], log_file)
        found = _wheels_in(house, wanted)
    missing = sorted(f"{n}=={v}" for n, v in set(wanted) - set(found))
    if missing:
        raise ImageError(f"the wheelhouse {house} lacks {', '.join(missing)} after pip download; see {log_file}")
    for (name, version), path in found.items():
        if _file_sha256(path) != wanted[(name, version)]:
            raise ImageError(f"{path}: sha256 differs from {lock.name}; delete it and build again")
    return sorted(found.values())


def _wheels_in(house: Path, wanted: dict) -> dict[tuple[str, str], Path]:
    found = {}
    for path in house.glob("*.whl"):
        name, version = path.name.split("-")[:2]
        key = (_canonical(name), version)
        if key in wanted:
            found[key] = path
    return found


def _stage(containerfile: str, files: tuple[str, ...], lock: Path | None, wheels: list[Path], context: Path) -> None:
    """The build context: the Containerfile, the image's serving/ files, the lock as
    requirements.txt and its wheels (hard links into the wheelhouse)."""
    (context / "serving").mkdir(parents=True)
    shutil.copy(ROOT / containerfile, context / "Containerfile")
    for name in files:
        shutil.copy(SERVING / name, context / "serving" / name)
    (context / "requirements.txt").write_text(lock.read_text() if lock and lock.exists() else "")
    (context / "wheels").mkdir()
    for wheel in wheels:
        try:
            os.link(wheel, context / "wheels" / wheel.name)
        except OSError:
            shutil.copy(wheel, context / "wheels" / wheel.name)


def inputs_hash(context: Path, base: str, tool: Builder, args: dict[str, str]) -> str:
    """Everything an image is made of: the staged context (names and bytes), the base's
    identity, the builder and the build arguments."""
    digest = hashlib.sha256()
    for path in sorted(p for p in context.rglob("*") if p.is_file()):
        relative = path.relative_to(context).as_posix()
        # The wheels are named with their hashes in requirements.txt already.
        content = b"" if relative.startswith("wheels/") else path.read_bytes()
        digest.update(relative.encode() + b"\0" + hashlib.sha256(content).digest())
    digest.update(json.dumps([base, tool.name, tool.version, sorted(args.items())]).encode())
    return digest.hexdigest()


def local_tf_serving_base(tool: Builder, log_file: Path, log=print) -> str:
    """Where TensorFlow Serving's image cannot be pulled: a base with our stand-in
    (serving/tf_serving.py, TensorFlow at the export's version) as
    /usr/bin/tensorflow_model_server, on the local Debian base."""
    debian = local_debian_base(tool, log_file, log)
    lock = REQUIREMENTS / "tf-serving-standin.txt"
    wheels = fill_wheelhouse(lock, log_file, log)
    with tempfile.TemporaryDirectory(dir=images_dir(), prefix=".context-") as tmp:
        context = Path(tmp)
        _stage("serving/tf-serving-standin.Containerfile", ("tf_serving.py",), lock, wheels, context)
        inputs = inputs_hash(context, _base_identity(tool, debian), tool, {})
        name = f"localhost/ee-tf-serving-standin:{inputs[:16]}"
        if not image_exists(tool, name):
            log("build: building a TensorFlow Serving stand-in base (serving/tf_serving.py; once; a few minutes) ...")
            _build(tool, context, name, {"BASE": debian}, log_file)
    return name


def _build(tool: Builder, context: Path, tag: str, args: dict[str, str], log_file: Path) -> None:
    build_args = [x for key, value in sorted(args.items()) for x in ("--build-arg", f"{key}={value}")]
    if tool.name == "docker":
        argv = [
            tool.path,
            "buildx",
            "build",
            "--load",
            "--build-arg",
            "SOURCE_DATE_EPOCH=0",
            *build_args,
            "-t",
            tag,
            "-f",
            str(context / "Containerfile"),
            str(context),
        ]
    else:
        pull = ["--pull-never"] if any(v.startswith("localhost/") for v in args.values()) else []
        argv = [
            tool.path,
            "build",
            "--isolation=chroot",
            "--timestamp",
            "0",
            "--layers=false",
            *pull,
            *build_args,
            "-t",
            tag,
            "-f",
            str(context / "Containerfile"),
            str(context),
        ]
    _run(argv, log_file, env={"SOURCE_DATE_EPOCH": "0"})


def _save_layout(tool: Builder, tag: str, layout: Path, ref: str, log_file: Path) -> str:
    """The built image into an OCI image layout; its manifest digest."""
    shutil.rmtree(layout, ignore_errors=True)
    layout.parent.mkdir(parents=True, exist_ok=True)
    if tool.name == "docker":
        skopeo = _skopeo()
        _run([skopeo, "copy", f"docker-daemon:{tag}", f"oci:{layout}:{ref}"], log_file)
    else:
        _run([tool.path, "push", "--quiet", tag, f"oci:{layout}:{ref}"], log_file)
    return layout_digest(layout, ref)


def layout_digest(layout: Path, ref: str) -> str:
    index = json.loads((layout / "index.json").read_text())
    for entry in index.get("manifests", []):
        if entry.get("annotations", {}).get("org.opencontainers.image.ref.name") == ref:
            return entry["digest"]
    raise ImageError(f"{layout}: no image tagged {ref}")


@contextlib.contextmanager
def exclusive(lock_file: Path):
    """Hold an exclusive lock on lock_file: builds sharing a folder (two nox sessions, or pytest
    workers) wait for each other instead of writing the same layout at once."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_image(image, *, log=print):
    """Build (or find already built) our image `image` (a config.images.OwnImage); returns
    the build_hooks.manifest.ServingImage to record."""
    folder = images_dir()
    with exclusive(folder / ".build.lock"):  # the base and the wheelhouse are shared
        return _build_image(image, folder, log)


def _build_image(image, folder: Path, log):
    from build_hooks.manifest import ServingImage

    tool = builder()
    folder.mkdir(parents=True, exist_ok=True)
    log_file = folder / f"{image.name}.log"
    base, note = resolve_base(tool, image, log_file, log)
    wheels = fill_wheelhouse(lock_file(image), log_file, log)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".context-") as tmp:
        context = Path(tmp)
        _stage(image.containerfile, IMAGE_FILES[image.framework], lock_file(image), wheels, context)
        inputs = inputs_hash(context, _base_identity(tool, base), tool, image.build_args)
        layout = folder / image.name / inputs[:16]
        ref = "image"
        if (layout / "index.json").exists():
            digest = layout_digest(layout, ref)
            log(f"build: image {image.name} {digest[:19]} (unchanged inputs; {_relative(layout)})")
        else:
            if note:
                log(note)
            started = time.monotonic()
            log(
                f"build: image {image.name}: building with {tool.name} on {base.split('@')[0]} (first time: a few "
                f"minutes; log: {_relative(log_file)}) ..."
            )
            tag = f"localhost/{image.name}:{inputs[:16]}"
            _build(tool, context, tag, {**image.build_args, "BASE": base}, log_file)
            digest = _save_layout(tool, tag, layout, ref, log_file)
            log(
                f"build: image {image.name} {digest[:19]} built in {time.monotonic() - started:.0f}s "
                f"({_size(layout) / 1e6:.0f} MB compressed)"
            )
    return ServingImage(
        name=image.name, digest=digest, tag=f"sha256-{digest[7:19]}", base=base, layout=_relative(layout)
    )


def local_image(image) -> str:
    """A built image (a ServingImage) in the builder's own store, as `localhost/<name>:<digest>`:
    what `serving.local.Container` runs. Running `oci:<layout>` directly would make buildah and
    podman name the image after the layout's path, which containers/image refuses ("repository
    name must be lowercase") wherever the checkout's path has an upper-case letter."""
    tool = builder()
    name = f"localhost/{image.name}:{image.digest.removeprefix('sha256:')[:32]}"
    if image_exists(tool, name):
        return name
    layout = ROOT / image.layout
    if not (layout / "index.json").exists():
        raise ImageError(f"{layout}: the built image is not here; build it again (`nox -s build`)")
    store = "docker-daemon" if tool.name == "docker" else "containers-storage"
    log_file = images_dir() / f"{image.name}.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    _run([_skopeo(), "copy", "--quiet", f"oci:{layout}:image", f"{store}:{name}"], log_file)
    return name


def _relative(path: Path) -> str:
    try:
        return path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


def _size(layout: Path) -> int:
    return sum(p.stat().st_size for p in (layout / "blobs").rglob("*") if p.is_file())


# -- pushing -----------------------------------------------------------------------------


def _skopeo() -> str:
    found = shutil.which("skopeo")
    if not found:
        raise ImageError(
            "copying a built image (its OCI layout) needs skopeo (`sudo apt-get install skopeo`), which "
            "copies the layout's bytes unchanged"
        )
    return found


def push(
    layout: Path, repository: str, tag: str, digest: str, *, token: str | None = None, tls_verify: bool = True
) -> str:
    """Copy an image's OCI layout to `repository:tag`, blobs unchanged (skopeo
    --preserve-digests), as one pushes by hand; returns `repository@digest`, read back from the
    registry. The stacks push with our provider's `eevertex_image` instead."""
    skopeo = _skopeo()
    log_file = images_dir() / "push.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    if not (Path(layout) / "index.json").exists():
        raise ImageError(f"{layout}: the built image is not here; build it again (`nox -s build`)")
    tls = [] if tls_verify else ["--dest-tls-verify=false"]
    creds = ["--dest-creds", f"oauth2accesstoken:{token}"] if token else []
    _run(
        [
            skopeo,
            "copy",
            "--quiet",
            "--preserve-digests",
            *tls,
            *creds,
            f"oci:{layout}:image",
            f"docker://{repository}:{tag}",
        ],
        log_file,
    )
    inspect_tls = [] if tls_verify else ["--tls-verify=false"]
    inspect_creds = ["--creds", f"oauth2accesstoken:{token}"] if token else []
    if not _run(
        [skopeo, "inspect", "--raw", *inspect_tls, *inspect_creds, f"docker://{repository}@{digest}"], log_file
    ).strip():
        raise ImageError(f"{repository}@{digest}: not found after the push; see {log_file}")
    return f"{repository}@{digest}"
