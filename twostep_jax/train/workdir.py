"""The run-folder contract: what a training run's WORKDIR holds, and whether a config fits it.

    WORKDIR/run_config.json        the TrainConfig (with its ModelConfig) that trains here
    WORKDIR/checkpoints/{latest,best}/<step>/   orbax checkpoints (train.checkpoint)
    WORKDIR/metrics.jsonl, tensorboard/        logs (train.metric_writer)
    WORKDIR/train_summary.json     written when training finishes
    WORKDIR/eval_<split>.{json,md}, figures/   evaluation outputs (evaluation.report)
    WORKDIR/.train.lock            held (flock) by the one train.py using the folder; holds its pid

Training and evaluation both read this module, so the file names live in one place.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from typing import Callable, Iterator

from twostep_jax import fileio
from twostep_jax.config import RESUMABLE_FIELDS, TrainConfig

RUN_CONFIG = "run_config.json"
SUMMARY = "train_summary.json"
CHECKPOINTS = "checkpoints"
LOCK = ".train.lock"
TEST_REPORT = "eval_test.json"  # its presence marks a finished, evaluated run (sweeps, tables)


def eval_report_name(split: str) -> str:
    """Base name of the evaluation files of a split (`eval_<split>.{json,md}`)."""
    return f"eval_{split}"


class WorkdirMismatchError(ValueError):
    """The workdir holds a run of a different configuration."""


def config_diff(old: TrainConfig, new: TrainConfig) -> list[str]:
    """Fields (other than RESUMABLE_FIELDS) in which two configs differ, as readable strings."""
    a, b = old.to_dict(), new.to_dict()
    return [f"{k}: workdir has {a.get(k)!r}, requested {b.get(k)!r}"
            for k in sorted(set(a) | set(b)) if k not in RESUMABLE_FIELDS and a.get(k) != b.get(k)]


class WorkdirBusyError(RuntimeError):
    """Another live process trains in the workdir."""


@contextlib.contextmanager
def run_lock(workdir: str) -> Iterator[None]:
    """Holds WORKDIR/.train.lock for the block; raises WorkdirBusyError naming the holder's pid.

    flock, not the file's existence, is the lock: the kernel drops it when its process exits in
    any way (kill -9 included), so a dead run never blocks the next one. The file is left in
    place (unlinking it would let a third process lock a fresh inode while a second still holds
    the old one).
    """
    os.makedirs(workdir, exist_ok=True)
    fd = os.open(os.path.join(workdir, LOCK), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            raise WorkdirBusyError(f"{workdir} is in use by another train.py (pid {holder}); "
                                   "wait for it to finish or use another --workdir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the flock


def check_or_write_run_config(config: TrainConfig, workdir: str, has_checkpoint: bool = True,
                              log: Callable[[str], None] = print) -> None:
    """Refuse a workdir that holds a run of a different config; record the config otherwise.

    A folder without a committed checkpoint (`has_checkpoint=False`: an earlier attempt failed
    before its first save) holds no run yet, so a different config takes it over (logged).
    """
    path = os.path.join(workdir, RUN_CONFIG)
    if os.path.exists(path):
        diff = config_diff(read_run_config(workdir), config)
        if diff and has_checkpoint:
            raise WorkdirMismatchError(
                f"{workdir} holds a run with a different configuration ({'; '.join(diff)}). "
                "Use another --workdir, or delete this one to start over.")
        if diff:
            log(f"{workdir}: the earlier run here saved no checkpoint; starting over with the new "
                f"configuration ({'; '.join(diff)})")
    os.makedirs(workdir, exist_ok=True)
    fileio.write_json(path, config.to_dict())


def read_run_config(workdir: str) -> TrainConfig:
    path = os.path.join(workdir, RUN_CONFIG)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{workdir} is not a run directory (no {RUN_CONFIG}); "
                                "pass the --workdir given to train.py")
    with open(path) as f:
        return TrainConfig.from_dict(json.load(f))
