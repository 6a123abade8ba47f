"""The images that serve a model, pinned here and nowhere else.

- **Our own images** (the default): built from `serving/` at build time with the framework
  versions the export uses, pushed to each target's Artifact Registry repository and
  uploaded by digest (`OWN_IMAGES`).
- **Vertex AI's prebuilt prediction images**, while they exist (`PREBUILT`): each with its
  end-of-support and end-of-availability dates, and the framework version it runs, so that
  an artifact is checked to load under that version before it is deployed there.
- **A container of your own** (`custom_image = true`): not checked.

Sources for the prebuilt images: the list in google-cloud-aiplatform 2.7.0
(`google/cloud/aiplatform/constants/prediction.py`: pytorch 1.11-2.4, tf2 2.1-2.15, the
newest of each), and the dates in Vertex AI's "Prebuilt containers for inference" table and
"Framework support policy" (https://cloud.google.com/vertex-ai/docs/predictions/pre-built-containers,
https://cloud.google.com/vertex-ai/docs/framework-support-policy): "After [the end-of-
availability] date, you can no longer use images for this framework version ... you can no
longer create new endpoints using this version". Each image is published in the us-,
europe- and asia-docker.pkg.dev registries, `:latest` only ("Using image names without the
latest tag isn't supported").
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import date

POLICY_SOURCE = "Vertex AI framework support policy, https://cloud.google.com/vertex-ai/docs/framework-support-policy"
# review warns this many days before a prebuilt image's end of availability.
WARN_DAYS = 90


def today() -> date:
    """The date the end-of-availability rules are checked against: today, or `EEV_TODAY`
    (YYYY-MM-DD) to see what a config will do on another day."""
    override = os.environ.get("EEV_TODAY")
    return date.fromisoformat(override) if override else date.today()


def accelerator_device(accelerator_type: str | None) -> str:
    """'cpu' without an accelerator, 'gpu' for NVIDIA ones, 'tpu' for TPUs."""
    if not accelerator_type:
        return "cpu"
    return "tpu" if accelerator_type.startswith("TPU_") else "gpu"


# -- our own images ------------------------------------------------------------------


@dataclass(frozen=True)
class OwnImage:
    """One of our serving images: `containerfile` built on `base` with `build_args`, served
    with this container spec (the routes our servers answer)."""

    framework: str
    device: str
    containerfile: str
    """Relative to the repository root."""
    base: str
    """The production base image, pinned by digest (where a tag is not pinned yet, the build
    resolves it and says so); where it cannot be pulled, the build uses a local stand-in."""
    build_args: dict[str, str] = field(default_factory=dict)
    predict_route: str = "/predict"
    health_route: str = "/health"

    @property
    def name(self) -> str:
        """The image's name in a registry repository, and the key in the build manifest."""
        return f"ee-serving-{self.framework}-{self.device}"


# The official python:3.11-slim-bookworm (Debian bookworm, CPython 3.11): the digest as pinned
# in public Dockerfiles (not checked against Docker Hub from here: no registry is reachable).
PYTHON_BASE = (
    "docker.io/library/python:3.11-slim-bookworm"
    "@sha256:528257d48c1da0dcecc2e725d1ae34498d60c965f1241e39cd6a85a8859bdf84"
)
# TensorFlow Serving's official image at the export's TensorFlow version (2.21). Its digest
# is not published in any file this project could read: the first build where Docker Hub is
# reachable resolves the tag and prints the digest to pin here.
TF_SERVING_BASE = {"cpu": "docker.io/tensorflow/serving:2.21.0", "gpu": "docker.io/tensorflow/serving:2.21.0-gpu"}

OWN_IMAGES: dict[tuple[str, str], OwnImage] = {
    # CPR's own routes (google-cloud-aiplatform LocalModel.build_cpr_model: /predict, /health).
    ("pytorch", "cpu"): OwnImage("pytorch", "cpu", "serving/pytorch.Containerfile", PYTHON_BASE, {"DEVICE": "cpu"}),
    ("pytorch", "gpu"): OwnImage("pytorch", "gpu", "serving/pytorch.Containerfile", PYTHON_BASE, {"DEVICE": "gpu"}),
    # TensorFlow Serving's REST routes for the model named "model" (model status, predict).
    ("tensorflow", "cpu"): OwnImage(
        "tensorflow",
        "cpu",
        "serving/tensorflow.Containerfile",
        TF_SERVING_BASE["cpu"],
        predict_route="/v1/models/model:predict",
        health_route="/v1/models/model",
    ),
    ("tensorflow", "gpu"): OwnImage(
        "tensorflow",
        "gpu",
        "serving/tensorflow.Containerfile",
        TF_SERVING_BASE["gpu"],
        predict_route="/v1/models/model:predict",
        health_route="/v1/models/model",
    ),
}


def own_image(framework: str, accelerator_type: str | None) -> OwnImage | None:
    """Our image for this framework on this hardware; None for TPUs (no image of ours)."""
    return OWN_IMAGES.get((framework, accelerator_device(accelerator_type)))


def registry_host(region: str) -> str:
    """Artifact Registry's Docker host for a region: a regional repository, in the Vertex AI
    region (Vertex AI: "the repository must use a region that matches the locational endpoint
    where you plan to create a Model. Don't use a multi-regional repository")."""
    return f"{region}-docker.pkg.dev"


# -- Vertex AI's prebuilt images -------------------------------------------------------


@dataclass(frozen=True)
class PrebuiltRelease:
    """One framework version of the prebuilt prediction images (CPU and GPU alike)."""

    family: str
    """`pytorch` or `tf2`, as in the image name."""
    version: str
    """As in the image name: `2-4`."""
    end_of_support: date
    end_of_availability: date
    runtime: tuple[str, ...]
    """pip requirements of the framework the image runs (its latest patch: the policy's
    images track the minor version's patches), for loading an artifact under it."""

    @property
    def framework(self) -> str:
        return "pytorch" if self.family == "pytorch" else "tensorflow"

    @property
    def label(self) -> str:
        return f"{self.family}-*.{self.version}"


PREBUILT: dict[tuple[str, str], PrebuiltRelease] = {
    (r.family, r.version): r
    for r in (
        PrebuiltRelease("pytorch", "2-4", date(2026, 7, 14), date(2027, 1, 14), ("torch==2.4.1",)),
        PrebuiltRelease("pytorch", "2-3", date(2026, 1, 14), date(2027, 1, 14), ("torch==2.3.1",)),
        PrebuiltRelease("pytorch", "2-2", date(2026, 1, 14), date(2027, 1, 14), ("torch==2.2.2",)),
        PrebuiltRelease("pytorch", "2-1", date(2024, 12, 1), date(2025, 12, 1), ("torch==2.1.2",)),
        PrebuiltRelease("pytorch", "2-0", date(2024, 7, 27), date(2025, 7, 27), ("torch==2.0.1",)),
        PrebuiltRelease("pytorch", "1-13", date(2024, 5, 15), date(2025, 5, 15), ("torch==1.13.1",)),
        PrebuiltRelease("pytorch", "1-12", date(2024, 5, 15), date(2025, 5, 15), ("torch==1.12.1",)),
        PrebuiltRelease("pytorch", "1-11", date(2024, 5, 15), date(2025, 5, 15), ("torch==1.11.0",)),
        PrebuiltRelease("tf2", "2-15", date(2026, 7, 14), date(2027, 1, 14), ("tensorflow-cpu==2.15.1",)),
        PrebuiltRelease("tf2", "2-14", date(2026, 1, 14), date(2027, 1, 14), ("tensorflow-cpu==2.14.1",)),
        PrebuiltRelease("tf2", "2-13", date(2024, 11, 28), date(2025, 11, 28), ("tensorflow-cpu==2.13.1",)),
        PrebuiltRelease("tf2", "2-12", date(2024, 6, 30), date(2025, 6, 30), ("tensorflow-cpu==2.12.1",)),
    )
}

# <region>-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest, pytorch-gpu.2-4:latest, ...
PREBUILT_IMAGE_RE = re.compile(
    r"^(us|europe|asia)-docker\.pkg\.dev/vertex-ai(-restricted)?/prediction/"
    r"(?P<family>tf2|pytorch)-(?P<device>cpu|gpu)\.(?P<version>[0-9]+-[0-9]+)(:(?P<tag>[A-Za-z0-9._-]+))?$"
)
IMAGE_FAMILY = {"tensorflow": "tf2", "pytorch": "pytorch"}
EXAMPLE_PREBUILT = {
    "pytorch": "us-docker.pkg.dev/vertex-ai/prediction/pytorch-cpu.2-4:latest",
    "tensorflow": "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest",
}


@dataclass(frozen=True)
class Prebuilt:
    """A prebuilt image URI, parsed."""

    uri: str
    family: str
    device: str
    release: PrebuiltRelease | None
    """None for a version this table does not know."""


def prebuilt(uri: str) -> Prebuilt | None:
    """The prebuilt image this URI names, or None if it is not one."""
    match = PREBUILT_IMAGE_RE.match(uri)
    if not match:
        return None
    return Prebuilt(uri, match["family"], match["device"], PREBUILT.get((match["family"], match["version"])))


def availability_problem(image: Prebuilt, on: date) -> str | None:
    """Why this prebuilt image cannot be used on that day, or None."""
    release = image.release
    if release is None:
        known = ", ".join(f"{f}-*.{v}" for f, v in PREBUILT if f == image.family)
        return (
            f"{image.uri!r} is not a prebuilt prediction image Vertex AI lists ({known} are); "
            f"allowed: leave serving_image unset for our own image"
        )
    if on >= release.end_of_availability:
        return (
            f"{image.uri!r} reached its end of availability on {release.end_of_availability.isoformat()} "
            f"({POLICY_SOURCE}: new endpoints cannot use it, existing ones may be deleted); allowed: leave "
            "serving_image unset for our own image (serving/), or custom_image = true with a container of yours"
        )
    return None


def availability_warning(image: Prebuilt, on: date) -> str | None:
    """A warning when the image's end of availability is within WARN_DAYS of that day."""
    release = image.release
    if release is None or on >= release.end_of_availability:
        return None
    left = (release.end_of_availability - on).days
    if left > WARN_DAYS:
        return None
    return (
        f"{image.uri} reaches its end of availability on {release.end_of_availability.isoformat()}, in {left} "
        f"days ({POLICY_SOURCE}); after that day the deployment cannot be recreated: unset serving_image to move "
        "to our own image"
    )
