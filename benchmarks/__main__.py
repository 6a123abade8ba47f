"""Run every benchmark and print the report; `--readme` also writes it into README.md."""

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

    return (f"{date.today()}: {cpu}, {os.cpu_count()} cores{memory}, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} threads)")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--readme", action="store_true", help="write the report into README.md")
    parser.add_argument("--only", choices=["handler", "synth", "build", "provider"], action="append")
    args = parser.parse_args(argv)
    wanted = args.only or ["handler", "synth", "build", "provider"]
    report = [f"machine: {machine()}", ""]
    print(report[0], flush=True)
    if "handler" in wanted:
        from benchmarks import handler

        for result in handler.run():
            report += result.lines() + [""]
            print("\n".join(result.lines()), flush=True)
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
    if args.readme:
        readme = ROOT / "README.md"
        text = readme.read_text()
        block = f"{START}\n```text\n" + "\n".join(report).rstrip() + f"\n```\n{END}"
        if START not in text:
            raise SystemExit(f"README.md has no {START} ... {END} block")
        readme.write_text(re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S))
        print("wrote the report into README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
