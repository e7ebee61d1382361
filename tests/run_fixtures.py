"""Shared helpers for tests that need a tiny dataset and a trained run (import, not a conftest).

A tiny built-in dataset (8 mixtures per fold, one SNR) and a `test_tiny` run trained for one
epoch through the real sweep path (`sweep.train_and_test`), so the run folder holds everything a
real one does: run_config.json, checkpoints/{latest,best}, eval_test.{json,md}.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

TINY_SNR = 20
TINY_MIXTURES_PER_FOLD = 8


def build_tiny_dataset(out_dir: Path, snrs=(TINY_SNR,), mixtures_per_fold: int = TINY_MIXTURES_PER_FOLD) -> Path:
    """A built-in dataset under `out_dir` (4 folds x `mixtures_per_fold` clips per SNR)."""
    from data_prep.prepare import prepare_builtin

    prepare_builtin(out_dir, snrs=list(snrs), mixtures_per_fold=mixtures_per_fold, workers=1,
                    log=lambda message: None)
    return out_dir


@dataclasses.dataclass
class TinyRun:
    data_dir: Path
    runs_dir: Path
    workdir: Path
    cell: object  # sweep.Cell
    report: dict  # the in-process (8-device) evaluation of the test fold


def tiny_cell(model: str = "2apae", alpha: float = 0.001, fold: int = 1):
    from twostep_jax.sweep import Cell

    # One epoch of test_tiny: 22 training clips -> 2 steps of 8; validation 2 clips.
    return Cell(model, alpha, TINY_SNR, fold, "test_tiny", (("epochs", 1),))


def train_tiny_run(root: Path) -> TinyRun:
    """Builds the dataset, trains + evaluates one tiny 2APAE cell in-process; returns its paths."""
    import json

    from twostep_jax.sweep import train_and_test

    data_dir = build_tiny_dataset(root / "data")
    runs_dir = root / "runs"
    cell = tiny_cell()
    train_and_test(cell, str(data_dir), str(runs_dir))
    workdir = Path(cell.workdir(str(runs_dir)))
    report = json.loads((workdir / "eval_test.json").read_text())
    return TinyRun(data_dir, runs_dir, workdir, cell, report)
