"""Vertex AI prebuilt prediction images: the default per framework and device, pinned here
and nowhere else.

Source: google-cloud-aiplatform 2.7.0, `google/cloud/aiplatform/constants/prediction.py`
(the SDK's list of prebuilt prediction containers; the newest of each family there),
and Google's page https://cloud.google.com/vertex-ai/docs/predictions/pre-built-containers.
Each image is published in the us-, europe- and asia-docker.pkg.dev registries; any of them
can be pulled from every region, so the default uses us- and a target may name another.
"""

from __future__ import annotations

import re

REGISTRY = "us-docker.pkg.dev/vertex-ai/prediction"

DEFAULT_IMAGES: dict[tuple[str, str], str] = {
    ("pytorch", "cpu"): f"{REGISTRY}/pytorch-cpu.2-4:latest",
    ("pytorch", "gpu"): f"{REGISTRY}/pytorch-gpu.2-4:latest",
    ("tensorflow", "cpu"): f"{REGISTRY}/tf2-cpu.2-15:latest",
    ("tensorflow", "gpu"): f"{REGISTRY}/tf2-gpu.2-15:latest",
}

# <region>-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest, pytorch-gpu.2-4:latest, ...
PREBUILT_IMAGE_RE = re.compile(
    r"^(us|europe|asia)-docker\.pkg\.dev/vertex-ai(-restricted)?/prediction/"
    r"(?P<family>tf2|pytorch)-(?P<device>cpu|gpu)\.[0-9]+-[0-9]+(:[A-Za-z0-9._-]+)?$"
)
IMAGE_FAMILY = {"tensorflow": "tf2", "pytorch": "pytorch"}


def accelerator_device(accelerator_type: str | None) -> str:
    """'cpu' without an accelerator, 'gpu' for NVIDIA ones, 'tpu' for TPUs."""
    if not accelerator_type:
        return "cpu"
    return "tpu" if accelerator_type.startswith("TPU_") else "gpu"


def default_image(framework: str, accelerator_type: str | None) -> str | None:
    """The pinned prebuilt image for this framework on this hardware; None for TPUs (no
    prebuilt TorchServe/TF Serving image here: set a custom image)."""
    return DEFAULT_IMAGES.get((framework, accelerator_device(accelerator_type)))


def prebuilt_parts(uri: str) -> tuple[str, str] | None:
    """(family, device) of a prebuilt image URI, or None if it is not one."""
    match = PREBUILT_IMAGE_RE.match(uri)
    return (match["family"], match["device"]) if match else None
