"""The rollout config: one TOML file describing the model and every target project.

Every rule is checked when the file is loaded, before any stack is built, and a broken
rule stops synth with a message that names the field and the values it accepts.

The file's two parts live beside this module: config/model.py (`[model]`) and config/target.py
(`[[targets]]`, its tables in config/target_tables.py); this one holds the whole (RolloutConfig),
the checks across the model and the targets, and reading a file with its error messages.
"""

from __future__ import annotations

import tomllib
import typing
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator

from config import images
from config.checks import FieldError, Frozen, check_prebuilt_image
from config.images import EXAMPLE_PREBUILT, IMAGE_FAMILY, accelerator_device
from config.model import ModelConfig
from config.target import TargetConfig

CO_HOSTING_DOC = "https://cloud.google.com/vertex-ai/docs/predictions/model-co-hosting"


class ConfigError(ValueError):
    """A rollout config that cannot be used; the message names every offending field."""


class RolloutConfig(Frozen):
    """The whole rollout: one model, promoted through an ordered list of targets."""

    model: ModelConfig
    targets: Annotated[tuple[TargetConfig, ...], Field(min_length=1)]
    """Targets in promotion order (dev first)."""
    path: Path | None = None
    """Where the config was read from; artifact_dir is relative to its folder."""

    @model_validator(mode="after")
    def _consistent(self) -> RolloutConfig:
        seen: set[str] = set()
        buckets: set[str] = set()
        for index, target in enumerate(self.targets):
            if target.name in seen:
                raise ValueError(f"targets.{index}.name: {target.name!r} is used twice; allowed: unique names")
            if target.bucket in buckets:
                raise ValueError(
                    f"targets.{index}.bucket: {target.bucket!r} is used by another target; "
                    "allowed: one bucket per target"
                )
            seen.add(target.name)
            buckets.add(target.bucket)
            if target.traffic_percent < 100 and self.model.previous is None:
                raise ValueError(
                    f"targets.{index}.traffic_percent: {target.traffic_percent} leaves "
                    f"{100 - target.traffic_percent}% for the previous artifact, but model.previous is "
                    "unset; allowed: 100, or set [model.previous] sha256 = '<previous artifact sha256>'"
                )
            self._check_image(index, target)
            self._check_pool(index, target)
        return self

    def _check_pool(self, index: int, target: TargetConfig) -> None:
        """Co-hosting serves only Vertex AI's prebuilt TensorFlow and PyTorch containers: "custom
        containers are not supported" (CO_HOSTING_DOC), and the model must list SHARED_RESOURCES in
        supportedDeploymentResourcesTypes (model.py Model.DeploymentResourcesType)."""
        if target.resource_pool is None:
            return
        kind = self.image_kind(target)
        previous = self.model.previous
        if (
            kind == "prebuilt"
            and previous
            and target.traffic_percent < 100
            and previous.serving_image
            and not images.prebuilt(previous.serving_image)
        ):
            kind, where = "custom", "model.previous.serving_image"
        else:
            where = f"targets.{index}.serving_image" if target.serving_image else "model.serving_image"
        if kind != "prebuilt":
            image = "our own serving image" if kind == "own" else f"a custom container ({where})"
            raise ValueError(
                f"targets.{index}.resource_pool: the target serves {image}, and a deployment resource pool takes "
                f"only Vertex AI's prebuilt TensorFlow and PyTorch containers (\"custom containers are not "
                f'supported": {CO_HOSTING_DOC}); allowed: a prebuilt serving_image such as '
                f"{EXAMPLE_PREBUILT[self.model.framework]!r}, or no resource_pool"
            )

    def _check_image(self, index: int, target: TargetConfig) -> None:
        """Our own image must exist for the hardware; a prebuilt image must be of the model's
        framework, fit the target's hardware and still be available."""
        model = self.model
        field = f"targets.{index}.serving_image" if target.serving_image else "model.serving_image"
        device = accelerator_device(target.accelerator_type)
        kind = self.image_kind(target)
        if kind == "custom":
            if not (target.serving_image or model.serving_image):
                raise ValueError(
                    f"targets.{index}.serving_image: custom_image = true needs your container's URI, "
                    "here or in model.serving_image"
                )
            return
        if device == "tpu":
            raise ValueError(
                f"targets.{index}.accelerator_type: neither our images nor Vertex AI's prebuilt {model.framework} "
                f"images serve on {target.accelerator_type}; allowed: an NVIDIA accelerator or none, or your "
                "own image with custom_image = true"
            )
        current = self.serving_image(target)
        checked = [(field, current)] if kind == "prebuilt" and current else []
        if (
            model.previous
            and model.previous.serving_image
            and target.traffic_percent < 100
            and images.prebuilt(model.previous.serving_image)
        ):
            checked.append(("model.previous.serving_image", model.previous.serving_image))
        for where, uri in checked:
            image = check_prebuilt_image(model.framework, uri, where)
            if image.device != device:
                hardware = (
                    f"accelerator_type {target.accelerator_type}" if target.accelerator_type else "no accelerator"
                )
                family = IMAGE_FAMILY[model.framework]
                raise ValueError(
                    f"{where}: {uri!r} is a {image.device.upper()} image but targets.{index} has {hardware}; "
                    f"allowed: a '{family}-{device}.' prebuilt image, or leave serving_image unset for our own "
                    f"{device.upper()} image"
                )

    def image_kind(self, target: TargetConfig) -> Literal["own", "prebuilt", "custom"]:
        """What serves this target: our own image (the default), a Vertex AI prebuilt one, or a
        container of the user's (custom_image)."""
        if self.model.custom_image:
            return "custom"
        return "prebuilt" if (target.serving_image or self.model.serving_image) else "own"

    def serving_image(self, target: TargetConfig) -> str | None:
        """The prebuilt or custom image URI that serves the current artifact on this target;
        None for our own image (its digest is known only once it is built)."""
        return target.serving_image or self.model.serving_image

    def own_image(self, target: TargetConfig) -> images.OwnImage | None:
        """Our image for this target, or None where a prebuilt or custom one serves."""
        if self.image_kind(target) != "own":
            return None
        return images.own_image(self.model.framework, target.accelerator_type)

    @property
    def image_kinds(self) -> frozenset[str]:
        """Every kind of image some target uses (what the artifact must hold)."""
        return frozenset(self.image_kind(t) for t in self.targets)

    @property
    def warnings(self) -> list[str]:
        """What synth prints as warnings (the config is usable, but a reviewer should know)."""
        return list(self.model.warnings)

    @property
    def artifact_dir(self) -> Path:
        base = self.path.parent if self.path else Path.cwd()
        return (base / self.model.artifact_dir).resolve()


_NUMBER_ERRORS = {
    "greater_than_equal",
    "less_than_equal",
    "greater_than",
    "less_than",
    "int_type",
    "int_parsing",
    "int_from_float",
}


def _bounds(loc: tuple) -> tuple[int, int] | None:
    """(ge, le) of the integer field (or dict value, e.g. input_shapes.<band>) at a
    validation error's location."""
    model: type[BaseModel] | None = RolloutConfig
    metadata, annotation = None, None
    for part in loc:
        if isinstance(part, int):
            continue
        if model is None:
            # A key of a dict field: its values' constraints sit on the value type.
            args = typing.get_args(annotation)
            value = args[1] if len(args) == 2 else None
            metadata = [m for info in typing.get_args(value)[1:] for m in getattr(info, "metadata", [info])]
            annotation = value
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        metadata, annotation = field.metadata, field.annotation
        inner = getattr(annotation, "__args__", (annotation,))[0]
        model = inner if isinstance(inner, type) and issubclass(inner, BaseModel) else None
    if not metadata:
        return None
    low = next((m.ge for m in metadata if hasattr(m, "ge")), None)
    high = next((m.le for m in metadata if hasattr(m, "le")), None)
    return None if low is None or high is None else (low, high)


def _describe(error: ValidationError) -> str:
    lines = []
    errors = error.errors()
    for item in errors:
        loc = item["loc"]
        if item["type"] == "too_short" and any(
            e["loc"][: len(loc)] == loc and len(e["loc"]) > len(loc) for e in errors
        ):
            continue  # pydantic counts only the valid items: their own errors say what is wrong
        error_object = (item.get("ctx") or {}).get("error")
        if isinstance(error_object, FieldError):
            loc = (*loc, error_object.field)
        where = ".".join(str(part) for part in loc) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] in ("enum", "literal_error"):
            message = f"{item['input']!r}; allowed: {item['ctx']['expected']}"
        elif item["type"] == "extra_forbidden":
            message = "unknown field; check the spelling against docs/configuration.md"
        elif item["type"] in _NUMBER_ERRORS and (bounds := _bounds(item["loc"])):
            message = f"{item['input']!r}; allowed: a whole number from {bounds[0]} to {bounds[1]}"
        elif item["type"] == "bool_type":
            message = f"{item['input']!r}; allowed: true or false"
        elif item["type"] in (
            "string_type",
            "dict_type",
            "tuple_type",
            "list_type",
            "model_type",
            "model_attributes_type",
        ):
            kind = {"string_type": "a string", "dict_type": "a table", "tuple_type": "a list", "list_type": "a list"}
            message = f"{item['input']!r}; allowed: {kind.get(item['type'], 'a table')}"
        lines.append(f"  {where}: {message}")
    return "\n".join(lines)


def parse_config(data: dict, path: Path | None = None) -> RolloutConfig:
    """Validate an already-parsed config mapping."""
    try:
        return RolloutConfig.model_validate({**data, "path": path})
    except ValidationError as error:
        where = f" {path}" if path else ""
        raise ConfigError(f"invalid rollout config{where}:\n{_describe(error)}") from None


def load_config(path: str | Path) -> RolloutConfig:
    """Read and validate a rollout config file (TOML)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"rollout config {path} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"rollout config {path} is not valid TOML: {error}") from None
    return parse_config(data, path.resolve())
