"""Aggregates run folders into the paper's Table IV (models x SNR) and Table V (α ablation).

Run-folder schema (written by training/evaluation; any depth under ``runs_dir``)::

    <run>/run_config.json  {"model": "2apae"|"gmp"|"gap"|"gwrp"|"atrous_ap"|"attention",
                            "snr": 0|10|20, "test_fold": 1..4, "alpha": float, "preset": str, ...}
    <run>/eval_test.json   {"clip": {"micro_ap": .., "macro_ap": .., "macro_auc": .., ...},
                            "localisation": {"segment_f1": .., "segment_er": .., "event_f1": ..,
                                             "psds1": .., ...}}

A run without ``eval_test.json`` is *incomplete*: it is left out of the tables
and listed separately. Each cell is ``mean ± std (n)`` over the runs of that
row and SNR (test folds and training seeds), with the sample standard
deviation (ddof = 1; no ``±`` for a single run). 2APAE variants with another
time attention (``model_config.attention_form``) get rows of their own. As in
the paper, "micro-P"/"macro-P" are average precision (sklearn
``average_precision_score``), "AUC" is macro ROC-AUC.

Significance marks (Table IV: each row against 2APAE at the table's α; Table V:
each α against the table's α): ``▲`` / ``▼`` when the row's mean is above /
below the reference's by more than two standard errors of the difference,
``sqrt(s_a²/n_a + s_b²/n_b)`` (both cells need n ≥ 2).
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from collections import defaultdict
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from twostep_jax import fileio
from twostep_jax.config import MODEL_NAMES, MODELS, TABLE_IV_ALPHA
from twostep_jax.data.dataset import PAPER_SNRS
from twostep_jax.fileio import save_figure
from twostep_jax.train.workdir import RUN_CONFIG, TEST_REPORT

CLIP_METRICS = (("micro_ap", "micro-P"), ("macro_ap", "macro-P"), ("macro_auc", "AUC"))
LOCALISATION_METRICS = (("segment_f1", "seg-F1"), ("event_f1", "event-F1"), ("psds1", "PSDS1"))
_REQUIRED_CONFIG = ("model", "snr", "test_fold", "alpha", "preset")
_DEFAULT_FORM = "released_code"

__all__ = ["bar_chart", "collect_runs", "scan_runs", "significance", "table_iv", "table_v", "write_tables"]


# --------------------------------------------------------------------------
# Reading run folders


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _metric_block(data: dict, key: str, path: Path, required: bool) -> dict:
    block = data.get(key)
    if block is None and not required:
        return {}
    if not isinstance(block, dict):
        raise ValueError(f"{path}: '{key}' must be an object of metrics; got {block!r}")
    return block


def _load_run(run_dir: Path, root: Path) -> dict:
    cfg_path = run_dir / RUN_CONFIG
    cfg = _read_json(cfg_path)
    missing = [k for k in _REQUIRED_CONFIG if k not in cfg]
    if missing:
        raise ValueError(f"{cfg_path}: missing required key(s) {missing}")
    model = str(cfg["model"]).lower()
    if model not in MODEL_NAMES:
        raise ValueError(f"{cfg_path}: unknown model {cfg['model']!r}; expected one of {list(MODEL_NAMES)}")
    try:
        snr, fold, alpha = float(cfg["snr"]), int(cfg["test_fold"]), float(cfg["alpha"])
    except (TypeError, ValueError):
        raise ValueError(f"{cfg_path}: snr, test_fold and alpha must be numbers; got "
                         f"{cfg['snr']!r}, {cfg['test_fold']!r}, {cfg['alpha']!r}") from None
    if not (math.isfinite(alpha) and alpha >= 0):
        raise ValueError(f"{cfg_path}: alpha must be >= 0; got {alpha!r}")
    run = {
        "run_dir": run_dir.relative_to(root).as_posix() or ".",
        "model": model,
        "snr": int(snr) if snr.is_integer() else snr,
        "test_fold": fold,
        "alpha": alpha,
        "preset": str(cfg["preset"]),
        "seed": int(cfg.get("seed", 0)),
        "attention_form": str((cfg.get("model_config") or {}).get("attention_form", _DEFAULT_FORM)),
    }
    eval_path = run_dir / TEST_REPORT
    if eval_path.is_file():
        ev = _read_json(eval_path)
        run["clip"] = _metric_block(ev, "clip", eval_path, required=True)
        run["localisation"] = _metric_block(ev, "localisation", eval_path, required=False)
    return run


def scan_runs(runs_dir) -> tuple[list[dict], list[str]]:
    """Finds every ``run_config.json`` under ``runs_dir``.

    Returns:
      ``(runs, incomplete)``: complete runs as dicts with keys ``run_dir``
      (relative to ``runs_dir``), ``model``, ``snr``, ``test_fold``, ``alpha``,
      ``preset``, ``clip``, ``localisation``; and the relative directories of
      runs that have no ``eval_test.json`` yet.
    """
    root = Path(runs_dir)
    if not root.is_dir():
        raise ValueError(f"runs directory {root} does not exist")
    runs, incomplete = [], []
    for cfg_path in sorted(root.rglob(RUN_CONFIG)):
        run = _load_run(cfg_path.parent, root)
        if "clip" in run:
            runs.append(run)
        else:
            incomplete.append(run["run_dir"])
    return runs, incomplete


def collect_runs(runs_dir) -> list[dict]:
    """Complete runs under ``runs_dir`` (see :func:`scan_runs`); incomplete ones are printed to stderr."""
    runs, incomplete = scan_runs(runs_dir)
    if incomplete:
        print(f"{len(incomplete)} incomplete run(s) without eval_test.json (skipped): "
              + ", ".join(incomplete), file=sys.stderr)
    return runs


# --------------------------------------------------------------------------
# Aggregation


def _select_preset(runs: list[dict], preset: str | None) -> list[dict]:
    presets = sorted({r["preset"] for r in runs})
    if preset is not None:
        chosen = [r for r in runs if r["preset"] == preset]
        if not chosen:
            raise ValueError(f"no runs with preset {preset!r}; presets found: {presets}")
        return chosen
    if len(presets) > 1:
        raise ValueError(f"runs come from several presets {presets}; pass preset= to pick one")
    return list(runs)


def _snr_columns(runs: Iterable[dict]) -> list:
    present = {r["snr"] for r in runs}
    paper = sorted(PAPER_SNRS, reverse=True)  # the paper's column order: 20, 10, 0 dB
    return [s for s in paper if s in present] + sorted(present - set(paper), reverse=True)


def _values(runs: list[dict], row_of: Callable[[dict], object]) -> dict:
    """``{(row, snr): [run, ...]}``, refusing two runs for the same row, SNR, fold and seed."""
    cells, seen = defaultdict(list), {}
    for r in runs:
        row = row_of(r)
        if row is None:
            continue
        key = (row, r["snr"], r["test_fold"], r.get("seed", 0))
        if key in seen:
            raise ValueError(f"two runs for the same cell (row {row!r}, SNR {r['snr']}, fold {r['test_fold']}, "
                             f"seed {r.get('seed', 0)}): {seen[key]} and {r['run_dir']}")
        seen[key] = r["run_dir"]
        cells[row, r["snr"]].append(r)
    return cells


def _stats(cell_runs: list[dict], block: str, metric: str) -> tuple[float, float, int]:
    """Mean, sample std (ddof=1; nan if n < 2) and count of the finite values."""
    vals = []
    for r in cell_runs:
        v = r.get(block, {}).get(metric)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"{r['run_dir']}: metric {block}.{metric} must be a number; got {v!r}")
        if math.isfinite(v):
            vals.append(float(v))
    n = len(vals)
    mean = float(np.mean(vals)) if n else float("nan")
    std = float(np.std(vals, ddof=1)) if n > 1 else float("nan")
    return mean, std, n


def _cell(mean: float, std: float, n: int) -> str:
    if n == 0:
        return "–"
    return f"{mean:.4f} ({n})" if n == 1 else f"{mean:.4f} ± {std:.4f} ({n})"


def significance(a: tuple[float, float, int], b: tuple[float, float, int]) -> str:
    """``▲`` if mean a exceeds mean b by more than two standard errors of the difference, ``▼``
    if it falls short by more; ``""`` otherwise or when either side has fewer than 2 values.
    a, b = (mean, sample std, n)."""
    (ma, sa, na), (mb, sb, nb) = a, b
    if na < 2 or nb < 2:
        return ""
    se = math.sqrt(sa * sa / na + sb * sb / nb)
    if ma - mb > 2 * se:
        return " ▲"
    if mb - ma > 2 * se:
        return " ▼"
    return ""


def _markdown(title: str, row_header: str, rows: list[tuple], snrs: list,
              metrics, block: str, cells: dict, reference=None) -> str:
    header = [row_header] + [f"{snr} dB {label}" for snr in snrs for _, label in metrics]
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row, label, _ in rows:
        vals = []
        for snr in snrs:
            for m, _ in metrics:
                stats = _stats(cells.get((row, snr), []), block, m)
                mark = ""
                if reference is not None and row != reference:
                    mark = significance(stats, _stats(cells.get((reference, snr), []), block, m))
                vals.append(_cell(*stats) + mark)
        lines.append("| " + " | ".join([label] + vals) + " |")
    return "\n".join(lines) + "\n"


def _num(x: float) -> str:
    return "" if math.isnan(x) else repr(float(x))


def _csv(row_header: str, rows: list[tuple], snrs: list, cells: dict) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    cols = [(block, m) for block, ms in (("clip", CLIP_METRICS), ("localisation", LOCALISATION_METRICS)) for m, _ in ms]
    w.writerow([row_header] + [f"snr{snr}_{m}_{s}" for snr in snrs for _, m in cols for s in ("mean", "std", "n")])
    for row, _, csv_label in rows:
        out = [csv_label]
        for snr in snrs:
            for block, m in cols:
                mean, std, n = _stats(cells.get((row, snr), []), block, m)
                out += [_num(mean), _num(std), str(n)]
        w.writerow(out)
    return buf.getvalue()


def _fmt_alpha(alpha: float) -> str:
    return repr(float(alpha))


def _note(preset: str, extra: str) -> str:
    return (f"Preset `{preset}`. Cells: mean ± sample std (ddof=1) over runs (test folds x seeds), "
            f"(n) = runs. micro-P / macro-P = average precision, AUC = macro ROC-AUC. ▲ / ▼: above / "
            f"below the reference row by more than two standard errors of the difference. {extra}\n")


def _table(runs, preset, row_of, rows_for, row_header, csv_header, title, extra, reference=None):
    """Both Markdown tables and the CSV; ``rows_for(keys)`` -> ``[(key, md_label, csv_label)]``;
    ``reference``: the row key the others are tested against."""
    runs = _select_preset(runs, preset)
    cells = _values(runs, row_of)
    selected = [r for r in runs if row_of(r) is not None]
    snrs = _snr_columns(selected)
    rows = rows_for({row for row, _ in cells})
    preset_name = runs[0]["preset"] if runs else "?"
    md = (_markdown(title, row_header, rows, snrs, CLIP_METRICS, "clip", cells, reference) + "\n"
          + _markdown(f"{title} — localisation (beyond the paper)", row_header, rows, snrs,
                      LOCALISATION_METRICS, "localisation", cells, reference) + "\n"
          + _note(preset_name, extra))
    return md, _csv(csv_header, rows, snrs, cells)


def _table_iv_row(alpha_2apae: float):
    def row_of(r):
        if r["model"] == "2apae" and not math.isclose(r["alpha"], alpha_2apae, rel_tol=1e-9, abs_tol=1e-12):
            return None
        form = r.get("attention_form", _DEFAULT_FORM)
        return r["model"] if form == _DEFAULT_FORM else f"{r['model']}:{form}"
    return row_of


def _row_label(row: str) -> str:
    model, _, form = row.partition(":")
    return MODELS[model].display + (f" ({form.replace('_', ' ')})" if form else "")


def table_iv(runs: list[dict], preset: str | None = None, alpha_2apae: float = TABLE_IV_ALPHA) -> tuple[str, str]:
    """Table IV: one row per model (paper order), SNR 20/10/0 × (micro-P, macro-P, AUC).

    2APAE rows use only runs with ``alpha == alpha_2apae``; baselines ignore α.
    A second Markdown table holds the localisation columns (segment F1, event
    F1, PSDS1). The CSV has one row per model id (``gap``, ..., ``2apae``) and
    columns ``snr<S>_<metric>_{mean,std,n}`` for all six metrics (empty mean/std
    where undefined).

    Returns:
      ``(markdown, csv)``.
    """
    def rows_for(present):
        order = {m: i for i, m in enumerate(MODEL_NAMES)}
        keys = sorted(present, key=lambda row: (order[row.partition(":")[0]], row))
        return [(row, _row_label(row), row) for row in keys]
    return _table(runs, preset, _table_iv_row(alpha_2apae), rows_for, "Model", "model",
                  "Table IV — weakly labelled SED results", f"2APAE at α = {_fmt_alpha(alpha_2apae)}; "
                  "marks compare each row with it.", reference="2apae")


def table_v(runs: list[dict], preset: str | None = None) -> tuple[str, str]:
    """Table V (ablation): one row per α of the 2APAE runs (ascending), same columns as Table IV.

    The CSV's first column ``alpha`` holds the α value.
    """
    row_of = lambda r: (r["alpha"] if r["model"] == "2apae"  # noqa: E731
                        and r.get("attention_form", _DEFAULT_FORM) == _DEFAULT_FORM else None)
    rows_for = lambda present: [(a, f"α = {_fmt_alpha(a)}", _fmt_alpha(a)) for a in sorted(present)]  # noqa: E731
    return _table(runs, preset, row_of, rows_for, "2APAE", "alpha",
                  "Table V — ablation of the reconstruction weight α (2APAE)",
                  f"α = 0 is two-step attention without the auxiliary decoder loss; marks compare each "
                  f"α with α = {_fmt_alpha(TABLE_IV_ALPHA)}.", reference=TABLE_IV_ALPHA)


def bar_chart(runs: list[dict], path, preset: str | None = None, alpha_2apae: float = TABLE_IV_ALPHA) -> Path:
    """PNG bar chart of Table IV's micro-P: bars per model grouped by SNR, std error bars."""
    runs = _select_preset(runs, preset)
    row_of = _table_iv_row(alpha_2apae)
    cells = _values(runs, row_of)
    models = [m for m in MODEL_NAMES if any(row == m for row, _ in cells)]  # released-form rows
    snrs = _snr_columns([r for r in runs if row_of(r) is not None])
    fig = Figure(figsize=(max(6.0, 2.0 + 0.5 * len(snrs) * max(len(models), 1)), 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    width = 0.8 / max(len(models), 1)
    x = np.arange(len(snrs))
    for i, m in enumerate(models):
        stats = [_stats(cells.get((m, s), []), "clip", "micro_ap") for s in snrs]
        means = [mean if n else 0.0 for mean, _, n in stats]
        errs = [std if n > 1 else 0.0 for _, std, n in stats]
        ax.bar(x - 0.4 + (i + 0.5) * width, means, width, yerr=errs, capsize=3, label=MODELS[m].display)
    ax.set_xticks(x)
    ax.set_xticklabels([f"SNR {s} dB" for s in snrs])
    ax.set_ylim(0.0, 1.0)
    ax.set_ylabel("micro-P (average precision)")
    ax.set_title(f"Table IV micro-P, mean ± std over runs (folds × seeds); 2APAE α = {_fmt_alpha(alpha_2apae)}", fontsize=10)
    if models:
        ax.legend(fontsize=8, ncols=min(len(models), 3))
    return save_figure(fig, path)


def write_tables(runs_dir, out_dir, preset: str | None = None) -> str:
    """Writes ``table_iv.{md,csv,png}`` and ``table_v.{md,csv}`` to ``out_dir``.

    Returns:
      the Markdown of both tables (plus the list of incomplete runs, if any).
    """
    runs, incomplete = scan_runs(runs_dir)
    if not runs:
        raise ValueError(f"no complete runs (with eval_test.json) under {runs_dir}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md_iv, csv_iv = table_iv(runs, preset)
    md_v, csv_v = table_v(runs, preset)
    if incomplete:
        md_iv += f"\nIncomplete runs (no eval_test.json, not included): {', '.join(incomplete)}\n"
    for name, text in (("table_iv.md", md_iv), ("table_iv.csv", csv_iv), ("table_v.md", md_v), ("table_v.csv", csv_v)):
        fileio.write_text(out / name, text)
    bar_chart(runs, out / "table_iv.png", preset)
    return md_iv + "\n" + md_v
