"""The google provider's bindings, one submodule at a time.

`cdktf-cdktf-provider-google` is one Python package of ~1,470 submodules, and its
`__init__` imports every one of them: even `from cdktf_cdktf_provider_google.storage_bucket
import StorageBucket` runs that `__init__` first (measured here: ~7 s of a ~9 s import;
`nox -s bench` shows it). The submodules need only the package's `_jsii` module (the
assembly). So the package is registered without running its `__init__`, the assembly is
loaded, and only the submodules the stacks use are imported. The classes are the same
ones; the synthesized JSON is byte for byte the same (tests/test_stacks.py).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType

PACKAGE = "cdktf_cdktf_provider_google"


def _package() -> ModuleType:
    package = sys.modules.get(PACKAGE)
    if package is None:
        spec = importlib.util.find_spec(PACKAGE)
        if spec is None:
            raise ModuleNotFoundError(
                f"{PACKAGE} is not installed: install the project's `synth` dependencies (nox -s synth)"
            )
        package = importlib.util.module_from_spec(spec)  # registered, __init__ not run
        sys.modules[PACKAGE] = package
        importlib.import_module(f"{PACKAGE}._jsii")  # the jsii assembly every submodule needs
    return package


def google(submodule: str) -> ModuleType:
    """One submodule of the provider bindings, e.g. google("storage_bucket").StorageBucket."""
    _package()
    return importlib.import_module(f"{PACKAGE}.{submodule}")
