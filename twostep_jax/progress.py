"""A dependency-free progress line: done/total, items/s and ETA, throttled."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class Progress:
    """Reports `label: done/total unit (pct) | rate unit/s | ETA` at most every `interval` s.

    On a terminal the line is redrawn in place every second; otherwise (logs, CI) a new line is
    printed every 10 s by default.
    """

    def __init__(self, label: str, total: int, unit: str = "mixtures",
                 stream: TextIO | None = None, interval: float | None = None):
        self.label, self.total, self.unit = label, total, unit
        self.stream = stream if stream is not None else sys.stderr
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval if interval is not None else (1.0 if self._tty else 10.0)
        self.done = 0
        self.postfix = ""  # e.g. the running loss, appended to the line
        self.start = time.monotonic()
        self._last = -float("inf")

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    @property
    def rate(self) -> float:
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if self.done >= self.total or now - self._last >= self.interval:
            self._last = now
            self._write(final=self.done >= self.total)

    def line(self) -> str:
        pct = 100.0 * self.done / self.total if self.total else 100.0
        rate = self.rate
        if self.done >= self.total:
            tail = f"done in {format_seconds(self.elapsed)}"
        elif rate > 0:
            tail = f"ETA {format_seconds((self.total - self.done) / rate)}"
        else:
            tail = "ETA ?"
        return (f"{self.label}: {self.done}/{self.total} {self.unit} ({pct:.0f}%) | "
                f"{rate:.1f} {self.unit}/s | {tail}" + (f" | {self.postfix}" if self.postfix else ""))

    def _write(self, final: bool) -> None:
        if self._tty:
            self.stream.write("\r" + self.line() + ("\n" if final else ""))
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()
