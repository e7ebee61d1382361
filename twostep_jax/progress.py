"""Progress lines for long work (data_prep stages, training): tqdm, with the project's settings.

    bar = progress_bar("train", total=3200, unit="clips")
    bar.update(8); bar.set_postfix_str("loss 0.2751"); bar.close()

`bar.restart_clock()` restarts the rate and ETA from the current count: training calls it after
its first step, whose compilation would otherwise inflate the first ETAs many times over.
On a terminal the line is redrawn in place every second (done/total, %, rate in unit/s, ETA).
Elsewhere (logs, CI, a pipe) every refresh is its own line, at most every 10 s, without the bar
graphic; `quiet=True` prints nothing. Without tqdm installed (a bare accelerator host runs
`scripts/gpu_check.sh` from the source tree) the bar is silent: the loop's epoch lines remain.
"""

from __future__ import annotations

import sys
from typing import TextIO

try:
    from tqdm import tqdm
except ModuleNotFoundError:  # optional on hosts that only run training (see the docstring)
    tqdm = None

_PLAIN_FORMAT = ("{desc}: {n_fmt}/{total_fmt} {unit} ({percentage:.0f}%) | {rate_text} | "
                 "ETA {remaining}{postfix}")


class _SilentBar:
    """The part of tqdm's interface the callers use, doing nothing (tqdm not installed)."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        pass

    def restart_clock(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> "_SilentBar":
        return self

    def __exit__(self, *exc) -> None:
        pass


class _Bar(tqdm or object):
    """tqdm with a `{rate_text}` field: "12.3 clips/s" (tqdm's own `rate_fmt` has no space)."""

    @property
    def format_dict(self):
        d = super().format_dict
        rate = d.get("rate")
        if rate is None and d.get("elapsed"):
            rate = (d["n"] - d.get("initial", 0)) / d["elapsed"]
        d["rate_text"] = f"{rate:.1f} {d['unit']}/s" if rate else f"? {d['unit']}/s"
        return d

    def restart_clock(self) -> None:
        """Forget the time spent so far: rate and ETA count from now and the current `n`."""
        from tqdm.std import EMA

        if self.disable:
            return
        self.start_t = self.last_print_t = self._time()
        self.initial = self.last_print_n = self.n
        self._ema_dn, self._ema_dt = EMA(self.smoothing), EMA(self.smoothing)


class _LineStream:
    """A file-like target that turns tqdm's carriage-return redraws into separate lines."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def write(self, text: str) -> None:
        text = text.replace("\r", "").strip()
        if text:
            self.stream.write(text + "\n")

    def flush(self) -> None:
        self.stream.flush()


def progress_bar(desc: str, total: int, unit: str = "items", initial: int = 0,
                 quiet: bool = False, stream: TextIO | None = None):
    """A tqdm bar reporting `unit`/s and ETA (see the module docstring)."""
    if tqdm is None:
        return _SilentBar()
    stream = stream if stream is not None else sys.stderr
    tty = bool(getattr(stream, "isatty", lambda: False)())
    return _Bar(total=total, initial=initial, desc=desc, unit=unit, disable=quiet,
                file=stream if tty else _LineStream(stream), mininterval=1.0 if tty else 10.0,
                dynamic_ncols=tty, ascii=not tty, leave=True,
                bar_format=None if tty else _PLAIN_FORMAT)


def format_seconds(seconds: float) -> str:
    """`1h02m` / `3m05s` / `42s`."""
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"
