"""Run logs: TensorBoard event files (tensorboardX, no TensorFlow) + a JSON-lines file.

The JSON-lines file (`WORKDIR/metrics.jsonl`, one `{"step", "kind", ...}` object per line) is the
machine-readable record tests and the table driver read; TensorBoard is for people.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

from twostep_jax import fileio

METRICS = "metrics.jsonl"


class MetricWriter:
    def __init__(self, workdir: str, enable_tensorboard: bool = True, enabled: bool = True):
        """`enabled=False` writes nothing (processes other than 0 of a multi-host run)."""
        self.path = os.path.join(workdir, METRICS)
        self.enabled = enabled
        self._tb = None
        if enable_tensorboard and enabled:
            try:
                from tensorboardX import SummaryWriter  # lazy: heavy import, only where runs log
            except ModuleNotFoundError:  # a bare accelerator host: metrics.jsonl still has it all
                print("note: tensorboardX is not installed; no TensorBoard event files "
                      f"(the metrics are in {self.path})", flush=True)
                return
            self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))

    def write(self, step: int, kind: str, scalars: dict[str, Any]) -> None:
        """Log scalars of a `kind` ("train", "val", "epoch", ...) at a global step."""
        if not self.enabled:
            return
        clean = {k: _to_float(v) for k, v in scalars.items()}
        with open(self.path, "a") as f:
            f.write(json.dumps({"step": int(step), "kind": kind, **clean}) + "\n")
        if self._tb is not None:
            for k, v in clean.items():
                if v is not None:
                    self._tb.add_scalar(f"{kind}/{k}", v, step)

    def flush(self) -> None:
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()

    def truncate_after(self, step: int) -> None:
        """Drop records after `step` (a resumed run re-logs the steps it recomputes)."""
        if not self.enabled or not os.path.exists(self.path):
            return
        with open(self.path) as f:
            keep = [line for line in f if line.strip() and json.loads(line)["step"] <= step]
        fileio.write_text(self.path, "".join(keep))


def _to_float(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else f  # keep NaN/inf visible in the log: they stop the run


def read_metrics(workdir: str, kind: str | None = None) -> list[dict]:
    path = os.path.join(workdir, METRICS)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [r for r in rows if kind is None or r["kind"] == kind]
