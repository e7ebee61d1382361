"""Experiment grids for the paper's Tables IV and V: train + evaluate every cell, resumably.

    python train.py --sweep paper_table4 --data DATA_DIR --runs RUNS_DIR
    python train.py --sweep quick --data DATA_DIR --runs RUNS_DIR

Each cell trains in `RUNS_DIR/<model>_a<alpha>/snr<snr>/fold<k>` (`train_and_evaluate`, which
resumes a half-finished run from its last checkpoint) and is then evaluated on its test fold
(`eval_test.json`, whose presence marks the cell finished: re-running skips it). At the end
`tables.write_tables` writes RUNS_DIR/table_iv.{md,csv,png} and table_v.{md,csv}. A cell whose
training diverges (non-finite loss) is reported and skipped; the sweep then ends with
`SweepIncompleteError` after writing the tables of the others. XLA compilations are cached in
RUNS_DIR/.jax_cache.

Grids:
* `paper_table4` — preset `paper` (50 epochs): 2APAE (α = 0.001) and the five baselines
  (Table IV) plus 2APAE at α = 0 and 0.01 (Table V), × SNR 0/10/20 dB × test folds 1-4 = 96 runs.
  Baselines have no decoder, so α does not enter their loss; their folders say `a0`.
* `quick` — the same rows at preset `cpu_small`, batch 8, 8 epochs, SNR 0 and 20 dB, test fold
  1 (16 runs): a CPU-sized rehearsal of both tables, one run per cell.
* `cpu_table` — a seeded CPU-scale Table IV: 2APAE (α = 0.001 and α = 0), GAP, GMP and Atrous
  AP at 0 and 20 dB, test fold 1, seeds 0/1/2 (30 runs, `cpu_small`, 4 epochs, no weight
  average), meant for a
  built-in dataset of 100 mixtures per fold (`python -m data_prep --source builtin
  --mixtures-per-fold 100 --snr 0 20`). The tables give mean ± std over seeds and mark which
  differences to 2APAE exceed two standard errors (`viz.tables`).
* `cpu_table_e12` — the same 30 runs with `cpu_small`'s own recipe (12 epochs, weight average
  0.99; about 2.5 h on 2 cores), all 0 dB runs first.
* `cpu_table_e48` — the same 30 runs with 4x the steps (48 epochs) at a constant learning rate
  (`plateau_factor=1`: the plateau rule, whose patience counts 270-clip epochs here, cuts the
  slow-starting baselines' rate before they take off); about 10 h on 2 cores, 0 dB first.
* `localisation` — what localises: 2APAE with the released, paper-equation and content-based
  time attention, GAP and GMP, at 20 dB, test fold 1, `cpu_small` with the demo's recipe;
  `python evaluate.py table RUNS_DIR` prints their localisation table.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from typing import Any, Callable

from twostep_jax.config import BASELINES, TABLE_IV_ALPHA, TABLE_V_ALPHAS, TrainConfig, train_config
from twostep_jax.data.dataset import hide_gpus_from_tf, load_dataset_info
from twostep_jax.evaluation.report import write_report
from twostep_jax.evaluation.restore import load_run
from twostep_jax.evaluation.score import evaluate_split
from twostep_jax.progress import format_seconds
from twostep_jax.train.loop import NonFiniteLossError, train_and_evaluate
from twostep_jax.train.workdir import TEST_REPORT
from twostep_jax.viz.tables import write_tables


class SweepIncompleteError(RuntimeError):
    """Some cells of a sweep failed; the others finished and are in the tables."""


@dataclasses.dataclass(frozen=True)
class Cell:
    """One run of a grid."""

    model: str
    alpha: float
    snr: int
    test_fold: int
    preset: str
    overrides: tuple[tuple[str, Any], ...] = ()  # extra TrainConfig fields (e.g. epochs)
    seed: int | None = None  # None: the config's seed, and no seed folder
    model_overrides: tuple[tuple[str, Any], ...] = ()  # ModelConfig fields (e.g. attention_form)

    def workdir(self, runs_dir: str) -> str:
        variant = "".join(f"-{v}" for _, v in self.model_overrides)
        parts = [runs_dir, f"{self.model}{variant}_a{self.alpha:g}", f"snr{self.snr}", f"fold{self.test_fold}"]
        return os.path.join(*parts, *([f"seed{self.seed}"] if self.seed is not None else []))

    def config(self, data_dir: str) -> TrainConfig:
        extra = dict(self.overrides)
        if self.seed is not None:
            extra["seed"] = self.seed
        return train_config(self.preset, model=self.model, alpha=self.alpha, snr=self.snr,
                            test_fold=self.test_fold, data_dir=data_dir, progress=False,
                            model_overrides=dict(self.model_overrides), **extra)

    def label(self) -> str:
        variant = "".join(f" {k}={v}" for k, v in self.model_overrides)
        seed = f" seed{self.seed}" if self.seed is not None else ""
        return f"{self.model}{variant} α={self.alpha:g} snr{self.snr} fold{self.test_fold}{seed}"


def _rows() -> list[tuple[str, float]]:
    """(model, α) rows of Tables IV and V."""
    return ([("2apae", TABLE_IV_ALPHA)] + [(m, 0.0) for m in BASELINES]
            + [("2apae", a) for a in TABLE_V_ALPHAS if a != TABLE_IV_ALPHA])


def _grid(preset: str, snrs, folds, rows=None, seeds=(None,), **overrides) -> list[Cell]:
    """Cells of (model, α[, model overrides]) rows; fold- and seed-major order, so that after
    each fold (and seed) every table cell has one more sample."""
    cells = []
    for fold in folds:
        for seed in seeds:
            for snr in snrs:
                for row in rows or _rows():
                    model, alpha, *model_overrides = row
                    cells.append(Cell(model, alpha, snr, fold, preset, tuple(sorted(overrides.items())),
                                      seed, tuple(model_overrides[0].items()) if model_overrides else ()))
    return cells


# The seeded CPU table's rows (issue: 2APAE with and without the decoder loss, GAP, GMP, Atrous AP).
CPU_TABLE_ROWS = (("2apae", TABLE_IV_ALPHA), ("2apae", 0.0), ("gap", 0.0), ("gmp", 0.0), ("atrous_ap", 0.0))
LOCALISATION_ROWS = (("2apae", TABLE_IV_ALPHA), ("2apae", TABLE_IV_ALPHA, {"attention_form": "paper_equations"}),
                     ("2apae", TABLE_IV_ALPHA, {"attention_form": "content"}), ("gap", 0.0), ("gmp", 0.0))

GRIDS: dict[str, Callable[[], list[Cell]]] = {
    "paper_table4": lambda: _grid("paper", (0, 10, 20), (1, 2, 3, 4)),
    # Sized for 2 CPU cores on a 64-mixtures-per-fold built-in dataset: batch 8 for more updates
    # per clip; 8 epochs.
    "quick": lambda: _grid("cpu_small", (0, 20), (1,), epochs=8, global_batch=8),
    # 30 runs in the 90-minute budget of 2 CPU cores: 4 epochs of a 100-mixtures-per-fold build,
    # without the weight average (the recipe the table in README was measured with, before the
    # average joined cpu_small).
    "cpu_table": lambda: _grid("cpu_small", (0, 20), (1,), rows=CPU_TABLE_ROWS, seeds=(0, 1, 2), epochs=4,
                               ema_decay=0.0),
    # The same table with cpu_small's own recipe (12 epochs + weight average, the demo's): 3x the
    # steps of `cpu_table`, so about 2.5 h on 2 cores. 0 dB (the target) runs first, for
    # every seed, so a part-built grid already answers it.
    "cpu_table_e12": lambda: [cell for snr in (0, 20) for cell in
                              _grid("cpu_small", (snr,), (1,), rows=CPU_TABLE_ROWS, seeds=(0, 1, 2))],
    # 4x those steps at a constant learning rate: the plateau rule's patience counts epochs, and
    # a 270-clip epoch cuts the slow-starting baselines' rate before they take off (README, "Four
    # times the steps"). About 10 h on 2 cores; 0 dB first.
    "cpu_table_e48": lambda: [cell for snr in (0, 20) for cell in
                              _grid("cpu_small", (snr,), (1,), rows=CPU_TABLE_ROWS, seeds=(0, 1, 2),
                                    epochs=48, plateau_factor=1.0)],
    "localisation": lambda: _grid("cpu_small", (20,), (1,), rows=LOCALISATION_ROWS),
}


def grid(name: str) -> list[Cell]:
    if name not in GRIDS:
        raise ValueError(f"unknown sweep {name!r}; choose one of {sorted(GRIDS)}")
    return GRIDS[name]()


# `--only KEY=V1,V2`: the cell fields a sweep can be restricted to, with their value types.
ONLY_KEYS: dict[str, Callable[[str], Any]] = {"model": str, "alpha": float, "snr": int, "fold": int, "seed": int}


def parse_only(specs: list[str] | None) -> dict[str, set]:
    """``["snr=0", "model=2apae,gmp"]`` -> ``{"snr": {0}, "model": {"2apae", "gmp"}}``."""
    only: dict[str, set] = {}
    for spec in specs or ():
        key, sep, values = spec.partition("=")
        key = key.strip()
        if not sep or key not in ONLY_KEYS or not values.strip():
            raise ValueError(f"--only {spec!r}: expected KEY=VALUE[,VALUE...] with KEY one of "
                             f"{', '.join(ONLY_KEYS)} (e.g. --only snr=0 --only model=gap,gmp)")
        try:
            parsed = {ONLY_KEYS[key](v.strip()) for v in values.split(",")}
        except ValueError:
            raise ValueError(f"--only {spec!r}: {key} takes {ONLY_KEYS[key].__name__} values") from None
        only[key] = only.get(key, parsed) & parsed  # repeating a key narrows it
    return only


def select(cells: list[Cell], only: dict[str, set]) -> list[Cell]:
    """The cells whose fields are among the allowed values of every key of `only`, in grid
    order (a cell without a seed folder has seed None and is kept only without a seed filter)."""
    def value(cell: Cell, key: str):
        return cell.test_fold if key == "fold" else getattr(cell, key)

    return [c for c in cells if all(value(c, k) in allowed for k, allowed in only.items())]


def is_finished(cell: Cell, runs_dir: str) -> bool:
    return os.path.isfile(os.path.join(cell.workdir(runs_dir), TEST_REPORT))


def _check_data(cells: list[Cell], data_dir: str) -> None:
    """Fails before any training if an SNR the grid needs has no dataset."""
    for snr in sorted({c.snr for c in cells}):
        load_dataset_info(data_dir, snr)  # raises FileNotFoundError with the build command


def train_and_test(cell: Cell, data_dir: str, runs_dir: str) -> dict:
    """Trains (or resumes) one cell and writes its eval_test.{json,md}; returns the report."""
    workdir = cell.workdir(runs_dir)
    config = cell.config(data_dir)
    train_and_evaluate(config, workdir)
    run = load_run(workdir, expected_model=config.model_config())
    report, predictions = evaluate_split(run, "test")
    write_report(workdir, report, predictions)
    return report


def use_compilation_cache(runs_dir: str) -> None:
    """Persistent XLA compilation cache under RUNS_DIR/.jax_cache (unless one is configured):
    cells that differ only in SNR or fold run identical programs, so all but the first of each
    model reuse its compiled steps, also across restarts of the sweep."""
    import jax

    if not jax.config.jax_compilation_cache_dir:
        jax.config.update("jax_compilation_cache_dir", os.path.join(os.path.abspath(runs_dir), ".jax_cache"))


def run_sweep(name: str, data_dir: str, runs_dir: str,
              run_cell: Callable[[Cell, str, str], dict] = train_and_test,
              only: list[str] | None = None) -> str:
    """Runs every unfinished cell of grid `name` (those `only` selects, e.g. ``["snr=0"]``, when
    given: a grid built in parts), then writes the tables of every finished run in `runs_dir`;
    returns their Markdown."""
    cells = grid(name)
    if only:
        selected = select(cells, parse_only(only))
        if not selected:
            raise ValueError(f"--only {' '.join(only)} selects none of the {len(cells)} runs of sweep {name}")
        print(f"sweep {name}: {len(selected)} of its {len(cells)} runs selected by --only {' '.join(only)}",
              flush=True)
        cells = selected
    hide_gpus_from_tf()
    use_compilation_cache(runs_dir)
    todo = [c for c in cells if not is_finished(c, runs_dir)]
    print(f"sweep {name}: {len(cells)} runs, {len(cells) - len(todo)} already finished, "
          f"{len(todo)} to run -> {runs_dir}", flush=True)
    if todo:
        _check_data(todo, data_dir)

    t0, failed = time.time(), []
    for i, cell in enumerate(todo, 1):
        t_run = time.time()
        print(f"[{i}/{len(todo)}] {cell.label()}: training -> {cell.workdir(runs_dir)}", flush=True)
        try:
            report = run_cell(cell, data_dir, runs_dir)
        except NonFiniteLossError as e:  # one diverged cell must not stop a days-long grid
            failed.append(cell)
            print(f"[{i}/{len(todo)}] {cell.label()}: FAILED: {e}", flush=True)
            continue
        elapsed = time.time() - t0
        eta = elapsed / i * (len(todo) - i)
        clip = report["clip"]
        print(f"[{i}/{len(todo)}] {cell.label()}: test micro-P {clip['micro_ap']:.4f} macro-P "
              f"{clip['macro_ap']:.4f} AUC {clip['macro_auc']:.4f} | run {format_seconds(time.time() - t_run)}"
              f" | sweep {format_seconds(elapsed)}, ETA {format_seconds(eta)}", flush=True)
    markdown = ""
    if len(failed) < len(cells):
        markdown = write_tables(runs_dir, runs_dir, preset=cells[0].preset)
        print(markdown, flush=True)
        print(f"tables written to {os.path.abspath(runs_dir)}/table_iv.{{md,csv,png}}, table_v.{{md,csv}}",
              file=sys.stderr, flush=True)
    if failed:
        raise SweepIncompleteError(
            f"{len(failed)} run(s) diverged (non-finite loss) and are missing from the tables: "
            f"{', '.join(c.workdir(runs_dir) for c in failed)}. Re-running the sweep retries them "
            "from their last good checkpoint.")
    return markdown
