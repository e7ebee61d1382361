"""The run-folder contract: what a training run's WORKDIR holds, and whether a config fits it.

    WORKDIR/run_config.json        the TrainConfig (with its ModelConfig) that trains here
    WORKDIR/checkpoints/{latest,best}/<step>/   orbax checkpoints (train.checkpoint)
    WORKDIR/metrics.jsonl, tensorboard/        logs (train.metric_writer)
    WORKDIR/train_summary.json     written when training finishes
    WORKDIR/eval_<split>.{json,md}, figures/   evaluation outputs (evaluation.report)

Training and evaluation both read this module, so the file names live in one place.
"""

from __future__ import annotations

import json
import os

from twostep_jax import fileio
from twostep_jax.config import RESUMABLE_FIELDS, TrainConfig

RUN_CONFIG = "run_config.json"
SUMMARY = "train_summary.json"
CHECKPOINTS = "checkpoints"
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


def check_or_write_run_config(config: TrainConfig, workdir: str) -> None:
    """Refuse a workdir that holds a run of a different config; record the config otherwise."""
    path = os.path.join(workdir, RUN_CONFIG)
    if os.path.exists(path):
        diff = config_diff(read_run_config(workdir), config)
        if diff:
            raise WorkdirMismatchError(
                f"{workdir} holds a run with a different configuration ({'; '.join(diff)}). "
                "Use another --workdir, or delete this one to start over.")
    os.makedirs(workdir, exist_ok=True)
    fileio.write_json(path, config.to_dict())


def read_run_config(workdir: str) -> TrainConfig:
    path = os.path.join(workdir, RUN_CONFIG)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{workdir} is not a run directory (no {RUN_CONFIG}); "
                                "pass the --workdir given to train.py")
    with open(path) as f:
        return TrainConfig.from_dict(json.load(f))
