"""What a model factory returns: the model and the bands it reads and writes; and how the
factory named by `model.source` is found."""

from __future__ import annotations

import importlib
import importlib.machinery
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from build_hooks.manifest import Band

FRAMEWORKS = ("pytorch", "tensorflow")


class ModelError(ValueError):
    """A user-facing problem with the model or its factory: printed as one message, no traceback."""


@dataclass(frozen=True)
class ModelSpec:
    """A per-pixel (or per-tile) model over named bands.

    TensorFlow models take [N, H, W, bands] and return [N, H, W, values]; PyTorch models
    take [N, bands, H, W] and return [N, values, H, W] (each framework's own layout).
    `output_bands` splits the values axis into Earth Engine output bands, in order.
    """

    model: Any
    """A torch.nn.Module (scriptable, or traceable on a tile), or a keras.Model / tf.Module."""
    framework: str
    """'pytorch' or 'tensorflow': must match the config's model.framework."""
    input_bands: tuple[str, ...]
    """Names of the bands Earth Engine sends, in the order the model's channels expect them."""
    output_bands: tuple[Band, ...]
    """Bands the model returns, in the order of its output channels."""

    def __post_init__(self) -> None:
        if self.framework not in FRAMEWORKS:
            raise ModelError(f"ModelSpec.framework: {self.framework!r}; allowed: {', '.join(FRAMEWORKS)}")
        for field in ("input_bands", "output_bands"):
            values = getattr(self, field)
            if isinstance(values, (str, Band)) or not values:
                raise ModelError(f"ModelSpec.{field}: allowed: a non-empty tuple, got {values!r}")
            object.__setattr__(self, field, tuple(values))
        if not all(isinstance(b, str) and b for b in self.input_bands):
            raise ModelError(f"ModelSpec.input_bands: allowed: band names (strings), got {self.input_bands!r}")
        if not all(isinstance(b, Band) for b in self.output_bands):
            raise ModelError("ModelSpec.output_bands: allowed: build_hooks.manifest.Band values")
        for field, names in (("input_bands", self.input_bands), ("output_bands", [b.name for b in self.output_bands])):
            if len(set(names)) != len(names):
                raise ModelError(f"ModelSpec.{field}: names must be unique, got {list(names)}")

    @property
    def output_values(self) -> int:
        return sum(b.length for b in self.output_bands)


def load_factory(source: str, base_dir: Path | None = None) -> Callable[[], ModelSpec]:
    """`builtin:<name>` or `package.module:function` -> the factory function.

    The module is looked up in base_dir (the config file's folder) first, then on the
    Python path, so a module beside the config needs no PYTHONPATH."""
    if source.startswith("builtin:"):
        from build_hooks import examples

        name = source.removeprefix("builtin:")
        try:
            return examples.BUILTIN[name]
        except KeyError:
            raise ModelError(
                f"model.source: unknown built-in {name!r}; allowed: "
                + ", ".join(f"builtin:{n}" for n in sorted(examples.BUILTIN))
            ) from None
    module_name, _, function = source.partition(":")
    if base_dir is not None:
        _fresh_sources_under(Path(base_dir).resolve())
        if str(base_dir) in sys.path:
            sys.path.remove(str(base_dir))
        sys.path.insert(0, str(base_dir))
        _forget_modules_from_elsewhere(module_name.split(".")[0], Path(base_dir).resolve())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and (module_name == error.name or module_name.startswith(error.name + ".")):
            raise ModelError(_not_found(module_name, base_dir)) from None
        raise ModelError(
            f"model.source: importing {module_name!r} failed: {error} (install it where the build runs, "
            f"{sys.executable})"
        ) from None
    factory = getattr(module, function, None)
    if not callable(factory):
        defined = sorted(
            n for n, v in vars(module).items() if inspect.isfunction(v) and v.__module__ == module.__name__
        )
        raise ModelError(
            f"model.source: {module_name!r} ({module.__file__}) has no function {function!r}; "
            f"functions it defines: {', '.join(defined) or 'none'}"
        )
    return factory


class _FreshSourceLoader(importlib.machinery.SourceFileLoader):
    """Compiles the source every time. A cached .pyc is trusted while the source's mtime (in
    whole seconds) and size are unchanged: an edit in the same second that keeps the size
    would build the old code."""

    def get_code(self, fullname):
        return self.source_to_code(self.get_data(self.path), self.path)


_FRESH_BASES: set[Path] = set()


def _fresh_sources_under(base: Path) -> None:
    """Import the user's modules under base (the config's folder) from source, never from
    __pycache__."""
    if base in _FRESH_BASES:
        return
    machinery = importlib.machinery
    finder = machinery.FileFinder.path_hook(
        (machinery.ExtensionFileLoader, machinery.EXTENSION_SUFFIXES),
        (_FreshSourceLoader, machinery.SOURCE_SUFFIXES),
        (machinery.SourcelessFileLoader, machinery.BYTECODE_SUFFIXES),
    )

    def hook(path: str):
        try:
            inside = Path(path or ".").resolve().is_relative_to(base)
        except OSError:
            inside = False
        if not inside:
            raise ImportError(f"{path} is not under {base}")
        return finder(path)

    sys.path_hooks.insert(0, hook)
    sys.path_importer_cache.clear()
    _FRESH_BASES.add(base)


def _forget_modules_from_elsewhere(top: str, base: Path) -> None:
    """A package of that name already imported from another folder (an earlier config's, in
    the same process: the rehearsal's next version, the starter) is forgotten when base
    has its own, so the import below finds this config's module, not the cached one."""
    if not ((base / f"{top}.py").is_file() or (base / top).is_dir()):
        return
    loaded = sys.modules.get(top)
    if loaded is None:
        return
    origin = getattr(loaded, "__file__", None) or next(iter(getattr(loaded, "__path__", [])), None)
    if origin and Path(origin).resolve().is_relative_to(base):
        return
    for name in [n for n in sys.modules if n == top or n.startswith(top + ".")]:
        del sys.modules[name]


def _not_found(module_name: str, base_dir: Path | None) -> str:
    top = module_name.split(".")[0]
    searched = [f"{base_dir} (the config's folder)"] if base_dir else []
    searched += [
        p for p in sys.path if p and p != str(base_dir) and "site-packages" not in p and "/lib/python" not in p
    ]
    return (
        f"model.source: cannot find module {module_name!r}; looked in: {'; '.join(searched)}; and the "
        f"installed packages. Put {top}.py (or a package folder {top}/) beside the config file, or "
        "install it in the build environment"
    )


def load_spec(source: str, base_dir: Path | None = None) -> ModelSpec:
    """Call the factory and check it returned a ModelSpec."""
    factory = load_factory(source, base_dir)
    try:
        spec = factory()
    except ValidationError as error:
        raise ModelError(f"model.source: {source} made an invalid Band: {error}") from None
    except TypeError as error:
        if "required positional argument" in str(error) and inspect.signature(factory).parameters:
            raise ModelError(f"model.source: {source} must be callable without arguments ({error})") from None
        raise
    if not isinstance(spec, ModelSpec):
        raise ModelError(
            f"model.source: {source} returned {type(spec).__name__}; allowed: a build_hooks.spec.ModelSpec"
        )
    return spec
