"""Synthesize every target's stacks from the rollout config (`cdktf synth` runs this).

The config comes from $ROLLOUT_CONFIG, else `rollout.toml` beside this file; the stacks go to
$CDKTF_OUTDIR (cdktf sets it), else `cdktf.out/`; local state is kept in $EEV_STATE_DIR, else
`terraform-state/` beside this file.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

from build_hooks.manifest import ManifestError
from config.rollout import ConfigError, load_config

ROOT = Path(__file__).resolve().parent
# cdktn runs on the machine's Node.js through jsii; jsii's banner about Node 20's end of
# life would bury the synth output. Node 20 synthesizes these stacks correctly.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


def main() -> int:
    config_path = Path(os.environ.get("ROLLOUT_CONFIG", ROOT / "rollout.toml"))
    outdir = Path(os.environ.get("CDKTF_OUTDIR", ROOT / "cdktf.out")).absolute()
    if not outdir.parent.is_dir():
        print(
            f"error: CDKTF_OUTDIR={outdir}: the folder {outdir.parent} does not exist; "
            "create it, or unset CDKTF_OUTDIR to synthesize into cdktf.out/",
            file=sys.stderr,
        )
        return 2
    if outdir.exists() and not outdir.is_dir():
        print(f"error: CDKTF_OUTDIR={outdir} is a file; allowed: a folder (created if missing)", file=sys.stderr)
        return 2
    try:
        rollout = load_config(config_path)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for warning in rollout.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    # Imported after validation: a config error should not wait for the provider bindings.
    try:
        from stacks.app import ArtifactMismatch, load_artifact, resolve_previous, synthesize
    except ModuleNotFoundError as error:
        print(
            f"error: {error} ({sys.executable}): install the synth dependencies, e.g. `nox -s synth`", file=sys.stderr
        )
        return 2
    try:
        manifest = load_artifact(rollout)
        rollout = resolve_previous(rollout)
        state_dir = Path(os.environ["EEV_STATE_DIR"]).absolute() if os.environ.get("EEV_STATE_DIR") else None
        stacks = synthesize(rollout, manifest, outdir=outdir, state_dir=state_dir)
    except (ManifestError, ArtifactMismatch, ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # noqa: BLE001 - a bug: one line here, the traceback in a file
        log = outdir.parent / "synth-error.log"
        log.write_text(traceback.format_exc())
        print(
            f"error: synth failed: {type(error).__name__}: {error} (a bug in this tool, not in your config; "
            f"the traceback is in {log})",
            file=sys.stderr,
        )
        return 1
    names = ", ".join(t.name for t in rollout.targets)
    print(f"synthesized {len(stacks)} stacks for {names} (artifact sha256 {manifest.sha256[:12]}) into {outdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
