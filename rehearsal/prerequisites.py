"""What the rehearsal needs on this machine before anything is applied: java, the image
tools, and the provider's own Python (`provider_python`, $EEV_PROVIDER_PYTHON)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from config.rollout import RolloutConfig

# The provider runs from its own virtualenv (tf 1.2.0 needs protobuf<6, TensorFlow 6).
PROVIDER_PYTHON_ENV = "EEV_PROVIDER_PYTHON"


def provider_python() -> Path:
    """The provider's own virtualenv (its framework needs protobuf<6, TensorFlow 6):
    $EEV_PROVIDER_PYTHON, else the one `nox` makes, `.nox/provider`."""
    default = Path(__file__).resolve().parent.parent / ".nox" / "provider" / "bin" / "python"
    return Path(os.environ.get(PROVIDER_PYTHON_ENV) or default)


def missing_prerequisites(config: RolloutConfig) -> list[str]:
    """What the rehearsal needs on this machine, checked before anything is applied; one
    line per missing piece, saying how to get it."""
    problems = []
    if config.model.framework == "pytorch" and "own" not in config.image_kinds and not shutil.which("java"):
        problems.append(
            "java: not on PATH; the emulator serves the .mar in TorchServe, which needs a Java 11+ "
            "runtime (e.g. `apt-get install openjdk-17-jre-headless`)"
        )
    if "own" in config.image_kinds:
        if not any(shutil.which(b) for b in ("buildah", "podman", "docker")):
            problems.append(
                "buildah: not on PATH (nor podman, docker); the rehearsal builds and runs our serving image "
                "(`apt-get install buildah mmdebstrap`)"
            )
        for program in ("skopeo", "docker-registry"):
            if not shutil.which(program):
                problems.append(
                    f"{program}: not on PATH; the rehearsal pushes our serving image to a loopback "
                    f"registry and pulls it by digest (`apt-get install {program}`)"
                )
    python = provider_python()
    if not python.exists():
        problems.append(
            f"provider python {python}: no such file; set ${PROVIDER_PYTHON_ENV} to a Python with "
            "the provider's dependencies (pip install '.[provider]')"
        )
    else:
        done = subprocess.run([str(python), "-c", "import tf, google.auth, requests"], capture_output=True, text=True)
        if done.returncode:
            problems.append(
                f"provider python {python}: cannot import the provider's dependencies "
                f"({done.stderr.strip().splitlines()[-1] if done.stderr.strip() else 'failed'}); "
                f"install them there (pip install '.[provider]') or set ${PROVIDER_PYTHON_ENV}"
            )
    return problems
