"""A rebuild with nothing changed against a first build, for both built-in examples:
in-process and as the whole `python -m build_hooks` command. Every build exports and checks
the model (that is what makes it right); an unchanged rebuild skips only the copy."""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {"pytorch": ROOT / "rollout.toml", "tensorflow": ROOT / "examples/tensorflow.toml"}


@dataclass
class BuildResult:
    framework: str
    full: float
    noop: float
    full_command: float
    noop_command: float


def _time(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def run(repeats: int = 3) -> list[BuildResult]:
    import json

    from build_hooks.build import build
    from config.rollout import parse_config

    results = []
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    for framework, path in CONFIGS.items():
        with tempfile.TemporaryDirectory() as tmp:
            # The example config, its artifact redirected into tmp (a TOML, as the command reads).
            artifact = Path(tmp) / "artifact"
            config_file = Path(tmp) / "rollout.toml"
            config_file.write_text(
                re.sub(r"(?m)^artifact_dir = .*$", f"artifact_dir = {json.dumps(str(artifact))}", path.read_text())
            )
            rollout = parse_config(tomllib.loads(config_file.read_text()), config_file)
            assert rollout.artifact_dir == artifact
            full, noop, full_cmd, noop_cmd = [], [], [], []
            command = [sys.executable, "-m", "build_hooks", str(config_file)]
            for _ in range(repeats):
                shutil.rmtree(rollout.artifact_dir, ignore_errors=True)
                full.append(_time(lambda rollout=rollout: build(rollout, log=lambda *_: None)))
                noop.append(_time(lambda rollout=rollout: build(rollout, log=lambda *_: None)))
                shutil.rmtree(rollout.artifact_dir)
                full_cmd.append(
                    _time(
                        lambda command=command: subprocess.run(
                            command, cwd=ROOT, env=env, check=True, capture_output=True
                        )
                    )
                )
                noop_cmd.append(
                    _time(
                        lambda command=command: subprocess.run(
                            command, cwd=ROOT, env=env, check=True, capture_output=True
                        )
                    )
                )
            results.append(BuildResult(framework, *(statistics.median(v) for v in (full, noop, full_cmd, noop_cmd))))
    return results


def lines(results: list[BuildResult]) -> list[str]:
    out = ["build (built-in examples; every build exports and checks, an unchanged rebuild skips the copy):"]
    for r in results:
        out.append(
            f"  {r.framework:10} in-process: first {r.full:6.2f} s, unchanged {r.noop:6.2f} s = {r.noop / r.full:6.1%}"
            f" | command: first {r.full_command:6.2f} s, unchanged {r.noop_command:5.2f} s"
            f" = {r.noop_command / r.full_command:6.1%}"
        )
    return out
