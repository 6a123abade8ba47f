"""Synth time against the number of targets. Each count runs in a fresh interpreter, as
`main.py` does: the import of cdktn and the provider bindings is timed apart from the
synthesis, so a fixed cost shows as fixed and a per-target cost as linear."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def config_with_targets(count: int, workdir: Path) -> Path:
    """rollout.toml with its dev target repeated `count` times (distinct projects, buckets)."""
    data = tomllib.loads((ROOT / "rollout.toml").read_text())
    data["model"]["artifact_dir"] = str((ROOT / data["model"]["artifact_dir"]).resolve())
    template = data["targets"][0]
    data["targets"] = [
        {
            **template,
            "name": f"t{i:03d}",
            "project": f"acme-geo-t{i:03d}",
            "bucket": f"acme-geo-t{i:03d}-ee-models",
            "access_log_bucket": f"acme-geo-t{i:03d}-gcs-access-logs",
        }
        for i in range(count)
    ]
    path = workdir / f"rollout-{count}.json"
    path.write_text(json.dumps(data))
    return path


def worker(config: str, outdir: str) -> None:
    """In the child: time the imports, then the synthesis."""
    started = time.perf_counter()
    from stacks.app import build_app, load_artifact  # cdktn, jsii and the provider bindings

    imported = time.perf_counter()
    from config.rollout import parse_config

    rollout = parse_config(json.loads(Path(config).read_text()), Path(config))
    build_app(rollout, load_artifact(rollout), outdir=Path(outdir), state_dir=Path(outdir) / "state").synth()
    done = time.perf_counter()
    print(json.dumps({"import": imported - started, "synth": done - imported}))


@dataclass
class SynthResult:
    targets: int
    imports: float
    synth: float
    process: float


def run(counts=(1, 10, 50), workdir: Path | None = None) -> list[SynthResult]:
    import tempfile

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = workdir or Path(tmp)
        for count in counts:
            config = config_with_targets(count, workdir)
            started = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "benchmarks.synth", str(config), str(workdir / f"out-{count}")],
                cwd=ROOT,
                capture_output=True,
                text=True,
                env={**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"},
                check=True,
            )
            process = time.perf_counter() - started
            timing = json.loads(done.stdout.strip().splitlines()[-1])
            stacks = len(list((workdir / f"out-{count}" / "stacks").iterdir()))
            assert stacks == 4 * count, f"{count} targets gave {stacks} stacks"
            results.append(SynthResult(count, timing["import"], timing["synth"], process))
    return results


def lines(results: list[SynthResult]) -> list[str]:
    base = results[0]
    out = ["synth (fresh interpreter per run; import = cdktn + provider bindings):"]
    for r in results:
        out.append(
            f"  {r.targets:3d} target(s), {4 * r.targets:3d} stacks: import {r.imports:5.2f} s, synth {r.synth:6.2f} s"
            f" ({r.synth / r.targets * 1e3:6.0f} ms/target), whole process {r.process:6.2f} s"
        )
    last = results[-1]
    per_target = [(r.synth / r.targets) for r in results]
    # Linear growth: the cost of each added target stays the same from one step to the next.
    marginal = [(b.synth - a.synth) / (b.targets - a.targets) for a, b in zip(results, results[1:], strict=False)]
    out.append(
        "  cost of each added target: "
        + ", ".join(
            f"{a.targets}->{b.targets}: {m * 1e3:.0f} ms"
            for (a, b), m in zip(zip(results, results[1:], strict=False), marginal, strict=True)
        )
    )
    out.append(
        f"  synth {last.targets} vs {base.targets} target(s): {last.synth / base.synth:5.1f}x the time for"
        f" {last.targets // base.targets}x the targets; per-target cost {per_target[-1] / per_target[0]:4.2f}x;"
        f" import {last.imports / base.imports:4.2f}x (paid once per process)"
    )
    return out


if __name__ == "__main__":
    worker(sys.argv[1], sys.argv[2])
