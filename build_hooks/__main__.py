"""`python -m build_hooks [config.toml ...]`: build and check each config's artifact."""

from __future__ import annotations

import argparse
import sys

from build_hooks.build import build
from build_hooks.manifest import ManifestError
from config.rollout import ConfigError, load_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m build_hooks", description=__doc__)
    parser.add_argument("configs", nargs="*", default=["rollout.toml"], help="rollout config files")
    args = parser.parse_args(argv)
    try:
        for path in args.configs:
            build(load_config(path))
    except (ConfigError, ManifestError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
