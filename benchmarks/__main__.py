"""Run every benchmark and print the report; `--write` also writes it into docs/guides/benchmarks.md."""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
# The serving report has a block of its own, so `--only serving --write` leaves the others.
SERVING_START, SERVING_END = "<!-- bench-serving:start -->", "<!-- bench-serving:end -->"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    import torch

    return (
        f"{date.today()}: {cpu}, {os.cpu_count()} cores{memory}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} threads)"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--write", action="store_true", help="write the report into docs/guides/benchmarks.md")
    parser.add_argument("--only", choices=["serving", "synth", "build", "provider"], action="append")
    args = parser.parse_args(argv)
    wanted = args.only or ["serving", "synth", "build", "provider"]
    report = [f"machine: {machine()}", ""]
    serving_report = list(report)
    print(report[0], flush=True)
    if "serving" in wanted:
        from benchmarks import serving

        lines = serving.run().lines()
        serving_report += lines + [""]
        print("\n".join(lines), flush=True)
    if "synth" in wanted:
        from benchmarks import synth

        subprocess.run([sys.executable, "-m", "build_hooks", str(ROOT / "rollout.toml")], cwd=ROOT, check=True)
        part = synth.lines(synth.run())
        report += part + [""]
        print("\n".join(part), flush=True)
    if "build" in wanted:
        from benchmarks import build

        part = build.lines(build.run())
        report += part
        print("\n".join(part), flush=True)
    if "provider" in wanted:
        from benchmarks import provider

        part = provider.lines(provider.run())
        report += [""] + part
        print("\n".join(part), flush=True)
    if args.write:
        page = ROOT / "docs" / "guides" / "benchmarks.md"
        text = page.read_text()
        if "serving" in wanted:
            text = _replace_block(text, SERVING_START, SERVING_END, serving_report)
        if {"synth", "build"} & set(wanted):
            text = _replace_block(text, START, END, report)
        page.write_text(text)
        print("wrote the report into docs/guides/benchmarks.md")
    return 0


def _replace_block(text: str, start: str, end: str, lines: list[str]) -> str:
    if start not in text:
        raise SystemExit(f"docs/guides/benchmarks.md has no {start} ... {end} block")
    block = f"{start}\n```text\n" + "\n".join(lines).rstrip() + f"\n```\n{end}"
    return re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
