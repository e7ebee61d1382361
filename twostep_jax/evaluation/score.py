"""Scoring a restored run on a split: clip metrics (the paper's) + localisation (beyond it).

    run = restore.load_run(workdir)
    result, predictions = evaluate_split(run, "test")   # {"clip": {...}, "localisation": {...}, ...}

Splits (`data.dataset.load_split`): `test` = the held-out fold; `val` / `train` = exactly the
carve training used. Clip metrics are `metrics.clip.clip_metrics` on `train.predict`'s clip
probabilities; localisation metrics are `metrics.sed.localisation_metrics` against the clips'
strong labels (hop `data.features.HOP_S`), twice: `localisation` on the read-out, median filter
and threshold chosen on the validation split (`evaluation.postprocess`, chosen once per
checkpoint and stored with the run), and `localisation_raw` on the released model's
`frame_probs` at threshold 0.5 without post-processing. `localisation_per_class`
(`metrics.sed.class_wise_localisation`, with the chosen post-processing) breaks the first down
by class: reference events and their median duration, detections, event-F1, and the best TPR
within PSDS1's e-FPR range.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import jax

from twostep_jax.data import dataset
from twostep_jax.data.features import CLIP_SECONDS, HOP_S
from twostep_jax.evaluation import postprocess
from twostep_jax.evaluation.restore import LoadedRun, check_data
from twostep_jax.metrics.clip import clip_metrics
from twostep_jax.metrics.sed import localisation_metrics, localisation_report
from twostep_jax.train.predict import predict
from twostep_jax.train.step import make_eval_step


def eval_config(run: LoadedRun, data_dir: str | None = None, snr: int | None = None):
    """The run's TrainConfig pointed at the evaluation data (`data_dir`/`snr` override it)."""
    return dataclasses.replace(run.config, data_dir=data_dir or run.config.data_dir,
                               snr=run.config.snr if snr is None else int(snr))


def load_split(run: LoadedRun, split: str = "test", data_dir: str | None = None, snr: int | None = None,
               allow_other_data: bool = False) -> tuple[Any, Any]:
    """(dataset info, ClipArrays) of `split` for `run`, after checking the data fits the run."""
    if split not in dataset.SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {dataset.SPLITS}")
    config = eval_config(run, data_dir, snr)
    if not config.data_dir:
        raise ValueError(f"{run.workdir} records no data directory: pass --data DATA_DIR")
    check_data(run, dataset.load_dataset_info(config.data_dir, config.snr), allow_other_data)
    return dataset.load_split(config, split)


def choose_postprocessing(run: LoadedRun, batch: int | None = None, reselect: bool = False) -> dict:
    """The run's read-out, median filter and threshold (chosen on its validation split for its
    current checkpoint, once; stored in WORKDIR/postprocessing.json)."""
    checkpoint = {"kind": run.kind, "step": run.step}
    stored = None if reselect else postprocess.load_postprocessing(run.workdir, checkpoint)
    if stored is not None:
        return stored
    _, val = load_split(run, "val")
    out = predict(make_eval_step(run.model), run.variables, val, run.norm_stats,
                  batch or run.config.global_batch, keep_frames=True)
    choice = postprocess.select_postprocessing(out, val.events, HOP_S, float(CLIP_SECONDS))
    return postprocess.save_postprocessing(run.workdir, choice, checkpoint)


def evaluate_split(run: LoadedRun, split: str = "test", data_dir: str | None = None,
                   snr: int | None = None, allow_other_data: bool = False,
                   threshold: float | None = None, batch: int | None = None,
                   postprocessing: dict | None = None) -> tuple[dict, dict]:
    """Metrics of `run` on `split` and the predictions they were computed from.

    Returns (report, predictions): report = {"clip": clip_metrics, "localisation": ...,
    "localisation_raw": ..., "postprocessing": ..., run and data info}; predictions =
    {"clip_probs": [N, K], "target": [N, K], "mixture_name": [N]}. `postprocessing` defaults to
    `choose_postprocessing(run)`; `threshold` overrides its threshold. `batch` is the global
    evaluation batch (default: the run's training batch).
    """
    t0 = time.time()
    if postprocessing is None:
        postprocessing = choose_postprocessing(run, batch)
    if threshold is not None:
        postprocessing = dict(postprocessing, threshold=float(threshold))
    info, clips = load_split(run, split, data_dir, snr, allow_other_data)
    out = predict(make_eval_step(run.model), run.variables, clips, run.norm_stats,
                  batch or run.config.global_batch, keep_frames=True)
    clip = clip_metrics(clips.target, out["clip_probs"], run.class_names)
    timing = (HOP_S, float(CLIP_SECONDS))
    scores = list(postprocess.readout(out, postprocessing["readout"]))
    chosen = dict(threshold=postprocessing["threshold"], median_filter=postprocessing["median_filter"],
                  fill=postprocessing.get("fill_gaps", 1))
    loc, by_class = localisation_report(scores, clips.events, *timing, **chosen)
    raw = localisation_metrics(list(out["frame_probs"]), clips.events, *timing, threshold=0.5)
    c = run.config
    report = {
        "workdir": os.path.abspath(run.workdir),
        "split": split,
        "model": c.model, "preset": c.preset, "alpha": c.alpha, "decoder": c.model_config().decoder,
        "trained_snr": c.snr, "snr": info.snr_db, "test_fold": c.test_fold,
        "checkpoint": {"kind": run.kind, "step": run.step, "epoch": run.meta.get("epoch"),
                       "best_val_micro_ap": run.meta.get("best_val_micro_ap")},
        "data": {"path": str(info.path), "fingerprint": info.fingerprint,
                 "trained_fingerprint": run.dataset_fingerprint},
        "clip": clip,
        "localisation": loc,
        # Per class name: the references, the detections and the class's share of PSDS1.
        "localisation_per_class": {
            name: {key: values[k] for key, values in by_class.items()}
            for k, name in enumerate(run.class_names)},
        "localisation_raw": raw,
        "postprocessing": {k: postprocessing.get(k, 1) for k in ("readout", "median_filter", "fill_gaps",
                                                                 "threshold", "val_psds1", "val_event_f1")},
        "devices": jax.local_device_count(),
        "seconds": time.time() - t0,
    }
    predictions = {"clip_probs": out["clip_probs"], "target": clips.target,
                   "mixture_name": clips.mixture_name}
    return report, predictions


