"""Run logs: TensorBoard event files (tensorboardX, no TensorFlow) + a JSON-lines file.

The JSON-lines file (`WORKDIR/metrics.jsonl`, one `{"step", "kind", ...}` object per line) is the
machine-readable record tests and the table driver read; TensorBoard is for people.
"""

from __future__ import annotations

import json
import math
import os
import struct
import uuid
from typing import Any

from twostep_jax import fileio

METRICS = "metrics.jsonl"
TENSORBOARD = "tensorboard"


class MetricWriter:
    def __init__(self, workdir: str, enable_tensorboard: bool = True, enabled: bool = True):
        """`enabled=False` writes nothing (processes other than 0 of a multi-host run)."""
        self.path = os.path.join(workdir, METRICS)
        self.enabled = enabled
        self._tb_dir = os.path.join(workdir, TENSORBOARD)
        self._tb = None
        if enable_tensorboard and enabled:
            try:
                from tensorboardX import SummaryWriter  # lazy: heavy import, only where runs log
            except ModuleNotFoundError:  # a bare accelerator host: metrics.jsonl still has it all
                print("note: tensorboardX is not installed; no TensorBoard event files "
                      f"(the metrics are in {self.path})", flush=True)
                return
            # A unique suffix: tensorboardX names files by the second and host, and a writer
            # opened within the same second as an earlier one would overwrite its file.
            self._tb = SummaryWriter(self._tb_dir,
                                     filename_suffix=f".{os.getpid()}.{uuid.uuid4().hex[:8]}")

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
        """Drop records after `step` from metrics.jsonl and the TensorBoard event files (a
        resumed run re-logs the steps it recomputes, so each step appears once). Only the
        process that writes (process 0) rewrites them."""
        if not self.enabled:
            return
        if os.path.exists(self.path):
            with open(self.path) as f:
                keep = [line for line in f if line.strip() and _complete_json(line)
                        and json.loads(line)["step"] <= step]
            fileio.write_text(self.path, "".join(keep))
        if os.path.isdir(self._tb_dir):
            for name in sorted(os.listdir(self._tb_dir)):
                if "tfevents" in name:
                    _truncate_event_file(os.path.join(self._tb_dir, name), step)


def _complete_json(line: str) -> bool:
    """False for the torn last line a killed run can leave."""
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


def _truncate_event_file(path: str, step: int) -> None:
    """Rewrites a TensorBoard event file without the events after `step` (and without a torn
    last record). Records are TFRecord frames: u64 length, u32 crc, data, u32 crc; kept frames
    are copied byte for byte, so their checksums stay valid."""
    try:
        from tensorboardX.proto.event_pb2 import Event
    except ModuleNotFoundError:  # no tensorboardX here: no event files were written by this host
        return
    with open(path, "rb") as f:
        data = f.read()
    kept, pos, dropped = [], 0, False
    while pos + 12 <= len(data):
        (length,) = struct.unpack_from("<Q", data, pos)
        end = pos + 12 + length + 4
        if end > len(data):
            dropped = True
            break
        if Event.FromString(data[pos + 12:pos + 12 + length]).step <= step:
            kept.append(data[pos:end])
        else:
            dropped = True
        pos = end
    dropped = dropped or pos != len(data)
    if dropped:
        with fileio.atomic_path(path) as tmp:
            tmp.write_bytes(b"".join(kept))


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
