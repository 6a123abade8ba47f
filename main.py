"""Synthesize every target's stacks from the rollout config (`cdktf synth` runs this).

The config comes from $ROLLOUT_CONFIG, else `rollout.toml` beside this file.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from build_hooks.manifest import ManifestError
from config.rollout import ConfigError, load_config

ROOT = Path(__file__).resolve().parent
# cdktf 0.21 runs on the machine's Node.js through jsii; jsii's banner about Node 20's end
# of life would bury the synth output. Node 20 synthesizes these stacks correctly.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


def main() -> int:
    config_path = Path(os.environ.get("ROLLOUT_CONFIG", ROOT / "rollout.toml"))
    outdir = Path(os.environ.get("CDKTF_OUTDIR", ROOT / "cdktf.out"))
    try:
        rollout = load_config(config_path)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    # Imported after validation: a config error should not wait for the provider bindings.
    try:
        from stacks.app import ArtifactMismatch, build_app, load_artifact, resolve_previous
    except ModuleNotFoundError as error:
        print(f"error: {error} ({sys.executable}): install the synth dependencies, e.g. `nox -s synth`",
              file=sys.stderr)
        return 2
    try:
        manifest = load_artifact(rollout)
        rollout = resolve_previous(rollout)
    except (ManifestError, ArtifactMismatch) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    build_app(rollout, manifest, outdir=outdir).synth()
    names = ", ".join(t.name for t in rollout.targets)
    print(f"synthesized {4 * len(rollout.targets)} stacks for {names} "
          f"(artifact sha256 {manifest.sha256[:12]}) into {outdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
