"""Evaluating a restored run on a split: clip metrics (the paper's) + localisation (beyond it).

    run = restore.load_run(workdir)
    report = evaluate_split(run, "test")           # {"clip": {...}, "localisation": {...}, ...}
    markdown = write_report(workdir, report)        # WORKDIR/eval_test.{json,md}

Splits: `test` = the held-out fold; `val` / `train` = exactly the carve training used
(`trainer.load_training_data`: the run's seed and val_fraction, or the test fold itself when the
run selected on it). Clip metrics are `metrics.clip_metrics` on `evaluation.predict`'s clip
probabilities; localisation metrics are `sed_metrics.localisation_metrics` on its frame
probabilities `[N, T, K]` against the clips' strong labels (hop = HOP / SAMPLE_RATE s).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from typing import Any

import jax

from twostep_jax import input_pipeline
from twostep_jax.evaluation import predict
from twostep_jax.features import CLIP_SECONDS, HOP, SAMPLE_RATE
from twostep_jax.metrics import clip_metrics
from twostep_jax.restore import LoadedRun, check_data
from twostep_jax.sed_metrics import localisation_metrics
from twostep_jax.training import make_eval_step

SPLITS = ("test", "val", "train")
HOP_S = HOP / SAMPLE_RATE  # seconds per frame (0.032)


def eval_config(run: LoadedRun, data_dir: str | None = None, snr: int | None = None):
    """The run's TrainConfig pointed at the evaluation data (`data_dir`/`snr` override it)."""
    return dataclasses.replace(run.config, data_dir=data_dir or run.config.data_dir,
                               snr=run.config.snr if snr is None else int(snr))


def load_split(run: LoadedRun, split: str = "test", data_dir: str | None = None, snr: int | None = None,
               allow_other_data: bool = False) -> tuple[Any, Any]:
    """(dataset info, ClipArrays) of `split` for `run`, after checking the data fits the run."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    config = eval_config(run, data_dir, snr)
    if not config.data_dir:
        raise ValueError(f"{run.workdir} records no data directory: pass --data DATA_DIR")
    info = input_pipeline.load_dataset_info(config.data_dir, config.snr)
    check_data(run, info, allow_other_data)
    if split == "test":
        return info, input_pipeline.load_folds(config.data_dir, config.snr, (config.test_fold,))
    from twostep_jax.trainer import load_training_data  # the same carve as training, by construction

    _, train, val, _ = load_training_data(config)
    return info, (val if split == "val" else train)


def evaluate_split(run: LoadedRun, split: str = "test", data_dir: str | None = None,
                   snr: int | None = None, allow_other_data: bool = False,
                   threshold: float = 0.5, batch: int | None = None) -> tuple[dict, dict]:
    """Metrics of `run` on `split` and the predictions they were computed from.

    Returns (report, predictions): report = {"clip": clip_metrics, "localisation": ..., run and
    data info}; predictions = {"clip_probs": [N, K], "target": [N, K], "mixture_name": [N]}.
    `batch` is the global evaluation batch (default: the run's training batch).
    """
    t0 = time.time()
    info, clips = load_split(run, split, data_dir, snr, allow_other_data)
    out = predict(make_eval_step(run.model), run.variables, clips, run.norm_stats,
                  batch or run.config.global_batch, keep_frames=True)
    clip = clip_metrics(clips.target, out["clip_probs"], run.class_names)
    loc = localisation_metrics(list(out["frame_probs"]), clips.events, HOP_S, float(CLIP_SECONDS),
                               threshold=threshold)
    c = run.config
    report = {
        "workdir": os.path.abspath(run.workdir),
        "split": split,
        "model": c.model, "preset": c.preset, "alpha": c.alpha,
        "trained_snr": c.snr, "snr": info.snr_db, "test_fold": c.test_fold,
        "checkpoint": {"kind": run.kind, "step": run.step, "epoch": run.meta.get("epoch"),
                       "best_val_micro_ap": run.meta.get("best_val_micro_ap")},
        "data": {"path": str(info.path), "fingerprint": info.fingerprint,
                 "trained_fingerprint": run.dataset_fingerprint},
        "clip": clip,
        "localisation": loc,
        "devices": jax.local_device_count(),
        "seconds": time.time() - t0,
    }
    predictions = {"clip_probs": out["clip_probs"], "target": clips.target,
                   "mixture_name": clips.mixture_name}
    return report, predictions


# ----------------------------------------------------------------------------- report


def _f(x: Any) -> str:
    return "–" if x is None else f"{x:.4f}"


def report_markdown(report: dict) -> str:
    """Overall metrics and a per-class AP/AUC table as Markdown."""
    clip, loc, ck = report["clip"], report["localisation"], report["checkpoint"]
    lines = [
        f"## {report['model']} ({report['preset']}, α = {report['alpha']:g}) — {report['split']} split",
        "",
        f"SNR {report['snr']} dB, test fold {report['test_fold']}, {clip['num_clips']} clips; "
        f"{ck['kind']} checkpoint at step {ck['step']} (epoch {ck['epoch']}).",
        "",
        "| micro-P | macro-P | AUC | seg-F1 (1 s) | seg-ER | event-F1 (200 ms) | event-ER | PSDS1 |",
        "|---|---|---|---|---|---|---|---|",
        "| " + " | ".join(_f(v) for v in (
            clip["micro_ap"], clip["macro_ap"], clip["macro_auc"], loc["segment_f1"], loc["segment_er"],
            loc["event_f1"], loc["event_er"], loc["psds1"])) + " |",
        "",
        f"micro-P / macro-P = average precision (sklearn), AUC = macro ROC-AUC, as the paper's "
        f"Tables IV/V. Localisation from frame-level activity > {loc['threshold']:g} "
        f"({loc['n_est_events']} detected vs {loc['n_ref_events']} reference events).",
        "",
        "| class | positives | AP | AUC |",
        "|---|---|---|---|",
    ]
    for name, m in clip["per_class"].items():
        lines.append(f"| {name} | {m['positives']} | {_f(m['ap'])} | {_f(m['auc'])} |")
    if clip["excluded_classes"]:
        lines += ["", f"Excluded from macro averages (no positive or no negative clip): "
                      f"{', '.join(clip['excluded_classes'])}."]
    return "\n".join(lines) + "\n"


def write_text_atomic(path: str, text: str) -> None:
    """Writes `text` via a temporary file in the same folder + rename (never half-written)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def report_name(report: dict) -> str:
    """`eval_{split}`; evaluation on other data than the run's own (another SNR, a rebuilt
    dataset) gets `eval_{split}_data-{fingerprint}` so it never replaces the run's own result."""
    name = f"eval_{report['split']}"
    data = report["data"]
    if data["fingerprint"] != data["trained_fingerprint"]:
        name += f"_data-{data['fingerprint']}"
    return name


def write_report(workdir: str, report: dict, predictions: dict | None = None) -> str:
    """Writes WORKDIR/<report_name>.json, .md and (if given) _predictions.npz — JSON last: its
    presence marks a finished evaluation for the sweep and the tables; returns the Markdown."""
    import json

    import numpy as np

    md = report_markdown(report)
    base = os.path.join(workdir, report_name(report))
    if predictions is not None:
        tmp = f"{base}_predictions.tmp{os.getpid()}.npz"
        np.savez_compressed(tmp, **predictions)
        os.replace(tmp, base + "_predictions.npz")
    write_text_atomic(base + ".md", md)
    write_text_atomic(base + ".json", json.dumps(report, indent=2, sort_keys=True) + "\n")
    return md
