"""`python -m serving.lock [NAME ...]`: write the serving images' requirement locks.

serving/requirements/<framework>.in lists what an image needs; this resolves it with pip
(`--dry-run --report`, nothing installed) at exactly the versions of the project's own
environment (its `pip freeze` as constraints), so an image serves with the framework
versions the export used, and writes `<framework>-<device>.txt`: every package pinned with
its sha256, which the image build installs with `--require-hashes`.

- cpu: torch's CPU build (`+cpu`, from https://download.pytorch.org/whl/cpu; on this
  machine a local file);
- gpu: torch's default PyPI build (CUDA), with the NVIDIA libraries it requires.

A maintainer step, run after a pin changes in pyproject.toml (the tests fail while a lock
disagrees with the project's environment); it needs the package index.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REQUIREMENTS = Path(__file__).resolve().parent / "requirements"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# Per lock: (source .in, pip options). gpu: --isolated drops this machine's local wheel
# folder, so torch comes from PyPI (the CUDA build), as on any machine.
LOCKS = {
    "pytorch-cpu": ("pytorch.in", ["--extra-index-url", CPU_INDEX]),
    "pytorch-gpu": ("pytorch.in", ["--isolated", "--index-url", "https://pypi.org/simple"]),
    "tf-serving-standin": ("tf-serving-standin.in", []),
}
# Locked without their dependencies: tensorflow-serving-api requires the `tensorflow`
# distribution, which would install TensorFlow a second time beside tensorflow-cpu.
NO_DEPS = {"tf-serving-standin": ["tensorflow-serving-api==2.21.0"]}


def project_versions() -> dict[str, str]:
    """name -> version in the running environment (the project's)."""
    frozen = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--all"], capture_output=True, text=True, check=True
    ).stdout
    versions = {}
    for line in frozen.splitlines():
        if "==" in line:
            name, version = line.split("==", 1)
            versions[_canonical(name)] = version.strip()
    return versions


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def resolve(source: Path, options: list[str], device: str) -> list[tuple[str, str, str]]:
    """(name, version, sha256) of every package the image installs."""
    versions = project_versions()
    if device == "gpu":
        # The project's torch is the CPU build: the GPU image takes the same version's CUDA build.
        versions["torch"] = versions["torch"].split("+")[0]
    with tempfile.TemporaryDirectory() as tmp:
        constraints = Path(tmp) / "constraints.txt"
        constraints.write_text("".join(f"{n}=={v}\n" for n, v in sorted(versions.items())))
        report = Path(tmp) / "report.json"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--dry-run",
                "--ignore-installed",
                "--quiet",
                "--only-binary=:all:",
                "--report",
                str(report),
                "-r",
                str(source),
                "-c",
                str(constraints),
                *options,
            ],
            capture_output=True,
            text=True,
        )
        if done.returncode:
            raise SystemExit(f"pip could not resolve {source.name} for {device}:\n{done.stderr[-3000:]}")
        installs = json.loads(report.read_text())["install"]
    locked = []
    for item in installs:
        meta, info = item["metadata"], item["download_info"]
        digest = info.get("archive_info", {}).get("hashes", {}).get("sha256")
        if not digest:
            raise SystemExit(f"{meta['name']} {meta['version']}: the index gave no sha256 ({info['url']})")
        locked.append((_canonical(meta["name"]), meta["version"], digest))
    return sorted(locked)


def write_lock(name: str) -> Path:
    source, options = LOCKS[name]
    device = name.rsplit("-", 1)[1]
    locked = resolve(REQUIREMENTS / source, options, device)
    with tempfile.TemporaryDirectory() as tmp:
        for requirement in NO_DEPS.get(name, []):
            extra = Path(tmp) / "extra.in"
            extra.write_text(requirement + "\n")
            locked += resolve(extra, options + ["--no-deps"], device)
    locked = sorted(set(locked))
    target = REQUIREMENTS / f"{name}.txt"
    lines = [
        f"# {name}: written by `python -m serving.lock {name}` from {source} at the project's versions;",
        "# installed with pip --require-hashes --no-deps. Do not edit.",
    ]
    lines += [f"{n}=={v} \\\n    --hash=sha256:{h}" for n, v, h in locked]
    target.write_text("\n".join(lines) + "\n")
    return target


def read_lock(path: Path) -> dict[str, str]:
    """name -> version of a lock file."""
    pins = {}
    for line in path.read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split(" ")[0].split("==")
            pins[name] = version
    return pins


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.lock", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=sorted(LOCKS), help=f"locks to write ({', '.join(sorted(LOCKS))})")
    for name in parser.parse_args(argv).names:
        print(f"wrote {write_lock(name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
