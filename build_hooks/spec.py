"""What a model factory returns: the model and the bands it reads and writes."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from build_hooks.manifest import Band


@dataclass(frozen=True)
class ModelSpec:
    """A per-pixel (or per-tile) model over named bands.

    TensorFlow models take [N, H, W, bands] and return [N, H, W, values]; PyTorch models
    take [N, bands, H, W] and return [N, values, H, W] (each framework's own layout).
    `output_bands` splits the values axis into Earth Engine output bands, in order.
    """

    model: Any
    framework: str
    input_bands: tuple[str, ...]
    output_bands: tuple[Band, ...]

    @property
    def output_values(self) -> int:
        return sum(b.length for b in self.output_bands)


def load_factory(source: str) -> Callable[[], ModelSpec]:
    """`builtin:<name>` or `package.module:function` -> the factory function."""
    if source.startswith("builtin:"):
        from build_hooks import examples

        name = source.removeprefix("builtin:")
        try:
            return examples.BUILTIN[name]
        except KeyError:
            raise ValueError(
                f"model.source: unknown built-in {name!r}; allowed: "
                + ", ".join(f"builtin:{n}" for n in sorted(examples.BUILTIN))
            ) from None
    module_name, _, function = source.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"model.source: cannot import {module_name!r}: {error}") from None
    try:
        return getattr(module, function)
    except AttributeError:
        raise ValueError(f"model.source: {module_name!r} has no {function!r}") from None
