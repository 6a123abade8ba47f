"""What the rollout config's models share: their frozen base, FieldError (a cross-field check's
error at one field), and the checks more than one field applies: a rule's message (config/rules.py)
as the validator's error, Cloud Storage bucket names, container environment names, Vertex AI
prebuilt images."""

from __future__ import annotations

import ipaddress
import re

from pydantic import BaseModel, ConfigDict

from config import images
from config.images import EXAMPLE_PREBUILT, IMAGE_FAMILY

ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class FieldError(ValueError):
    """A cross-field check's error about one field of the model it runs on: reported at that
    field (`targets.0.accelerator_type: ...`), not at the model."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def check(problem: str | None) -> None:
    """Raise a rule's message (config/rules.py) as the validator's error."""
    if problem:
        raise ValueError(problem)


def check_field(field: str, problem: str | None) -> None:
    if problem:
        raise FieldError(field, problem)


class Frozen(BaseModel):
    """Every table of the config: immutable, unknown fields refused, each field described by
    the docstring under it (docs/configuration.md is built from them)."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


def check_bucket_name(name: str) -> str:
    """Apply Cloud Storage's bucket naming rules, so GCS never refuses the name at apply."""
    allowed = "3-63 characters of a-z, 0-9, '-', '_' and '.', starting and ending with a letter or digit"
    if not 3 <= len(name) <= 222:
        raise ValueError(f"{name!r} has {len(name)} characters; allowed: {allowed}")
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*[a-z0-9]", name):
        raise ValueError(f"{name!r} is not a valid bucket name; allowed: {allowed}")
    if ".." in name or "-." in name or ".-" in name:
        raise ValueError(f"{name!r} has '..', '-.' or '.-', which Cloud Storage refuses; allowed: {allowed}")
    components = name.split(".")
    if len(components) == 1 and len(name) > 63:
        raise ValueError(f"{name!r} has {len(name)} characters; allowed: {allowed}")
    if any(len(c) > 63 for c in components):
        raise ValueError(f"{name!r} has a dot-separated part over 63 characters; allowed: {allowed}")
    try:
        ipaddress.ip_address(name)
    except ValueError:
        pass
    else:
        raise ValueError(f"{name!r} is an IP address, which Cloud Storage refuses as a bucket name")
    if name.startswith("goog") or "google" in name or "g00gle" in name:
        raise ValueError(f"{name!r} starts with 'goog' or contains 'google', which Cloud Storage refuses")
    return name


def check_prebuilt_image(framework: str, uri: str, field: str = "serving_image") -> images.Prebuilt:
    """A Vertex AI prebuilt prediction image of this framework that is still available, or an
    error saying which are."""
    family = IMAGE_FAMILY[framework]
    image = images.prebuilt(uri)
    if image is None or image.family != family:
        raise ValueError(
            f"{field} {uri!r} is not a Vertex AI prebuilt {framework} image; allowed: unset (our own image, "
            f"built from serving/), a prebuilt one such as {EXAMPLE_PREBUILT[framework]!r}, or any image with "
            "custom_image = true"
        )
    problem = images.availability_problem(image, images.today())
    if problem:
        raise ValueError(f"{field}: {problem}")
    return image


def check_env(env: dict[str, str]) -> dict[str, str]:
    """Container environment variable names: what a shell and Vertex AI accept."""
    for key in env:
        if not ENV_NAME_RE.match(key):
            raise ValueError(f"{key!r}: allowed: letters, digits and '_', not starting with a digit")
        if key.startswith("AIP_"):
            raise ValueError(f"{key!r}: names starting with AIP_ are reserved by Vertex AI; allowed: any other name")
    return env
