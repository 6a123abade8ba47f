"""How a rehearsal reports: `Progress` (each long step on the screen, details in a log file,
a summary at the end) and its failures: `RehearsalFailed`, raised by `check` and `found`."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path


class RehearsalFailed(AssertionError):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise RehearsalFailed(message)


def found(pattern: str, text: str, message: str) -> re.Match[str]:
    """The first match of the pattern in the text, or RehearsalFailed with the message."""
    match = re.search(pattern, text)
    if match is None:
        raise RehearsalFailed(message)
    return match


@dataclass
class Progress:
    """Prints each long step as it starts and ends, and keeps a summary; details go to
    `log` (a file), never to the screen."""

    rows: list[tuple[str, str, float]] = field(default_factory=list)
    out: Callable[[str], object] = print
    log: Path | None = None

    @contextmanager
    def step(self, name: str):
        self.out(f"  .. {name}")
        self.detail(f"== {name}")
        started = time.monotonic()
        try:
            yield
        except BaseException as error:
            self.rows.append((name, f"FAILED: {str(error).splitlines()[0][:120]}", time.monotonic() - started))
            self.out(f"  !! {name} failed after {time.monotonic() - started:.1f}s")
            self.detail(f"FAILED: {error}")
            raise
        seconds = time.monotonic() - started
        self.rows.append((name, "ok", seconds))
        self.out(f"  ok {name} ({seconds:.1f}s)")

    def note(self, text: str) -> None:
        """A short fact under the current step."""
        self.out(f"     {text}")
        self.detail(text)

    def detail(self, text: str) -> None:
        if self.log is not None:
            with self.log.open("a") as log:
                log.write(text.rstrip() + "\n")

    def summary(self) -> str:
        width = max((len(r[0]) for r in self.rows), default=10)
        result_width = max((len(r[1]) for r in self.rows), default=6)
        lines = [f"{'step':{width}}  {'result':{result_width}}  seconds"]
        lines += [f"{name:{width}}  {result:{result_width}}  {seconds:7.1f}" for name, result, seconds in self.rows]
        total = sum(r[2] for r in self.rows)
        lines.append(f"{'total':{width}}  {'':{result_width}}  {total:7.1f}")
        return "\n".join(lines)
