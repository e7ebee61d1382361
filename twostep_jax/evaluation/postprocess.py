"""Frame-level read-out and post-processing of a run, chosen on its validation split.

Every head offers several frame-level signals (`frame_outputs` {name: [N, T, K]}, see
`model/heads.py`); a read-out is one of them, raw or gated by the clip probability
(`<name>*clip` = signal x clip probability of that class, which silences classes the clip-level
decision rules out). On the validation clips (carved from the training folds; never the test
fold):

1. read-out and median-filter length: the pair with the best exact PSDS1 (DCASE scenario 1,
   threshold-independent, so it ranks the scores themselves); ties (on a small validation set
   PSDS1's across-class penalty, alpha_st = 1, often floors every candidate at 0) are broken by
   the same PSDS without that penalty (alpha_st = 0: the area under the mean class TPR);
2. decision threshold: the one with the best event-based F1 (200 ms collar) for that pair.

The choice is stored with the run (`WORKDIR/postprocessing.json`, tied to the checkpoint it was
chosen for) and applied unchanged to the test split.
"""

from __future__ import annotations

import json
import os
from typing import Any, Sequence

import numpy as np

from twostep_jax import fileio
from twostep_jax.metrics.sed import event_based_metrics, frame_probs_to_events, psds

POSTPROCESSING = "postprocessing.json"
MEDIAN_FILTERS = (1, 5, 9, 15, 21)  # frames of 32 ms: off, 0.16 s ... 0.67 s
THRESHOLDS = tuple(np.round(np.arange(0.05, 0.96, 0.05), 2).tolist())
GATE = "*clip"


def readout(outputs: dict, name: str) -> np.ndarray:
    """Frame-level scores [N, T, K] of read-out `name` from `train.predict` outputs (with
    `keep_frames`): a `frame_outputs` entry, optionally gated (`<name>*clip`)."""
    base = name[:-len(GATE)] if name.endswith(GATE) else name
    if base not in outputs["frame_outputs"]:
        raise ValueError(f"unknown read-out {name!r}; this model offers "
                         f"{sorted(candidate_names(outputs))}")
    frames = outputs["frame_outputs"][base]
    if name.endswith(GATE):
        return frames * outputs["clip_probs"][:, None, :]
    return frames


def candidate_names(outputs: dict) -> list[str]:
    """Every read-out the model's outputs allow, raw and gated."""
    return [n + g for n in sorted(outputs["frame_outputs"]) for g in ("", GATE)]


def select_postprocessing(outputs: dict, events: Sequence, hop_s: float, clip_duration: float,
                          median_filters: Sequence[int] = MEDIAN_FILTERS,
                          thresholds: Sequence[float] = THRESHOLDS) -> dict[str, Any]:
    """Chooses read-out, median filter and threshold on one split (see module docstring).

    `outputs` = `train.predict(..., keep_frames=True)` on the validation clips, `events` their
    reference events. Returns {"readout", "median_filter", "threshold", "val_psds1",
    "val_psds_alpha0", "val_event_f1", "candidates": {readout: {median_filter: psds1}},
    "candidates_alpha0": {readout: {median_filter: psds with alpha_st = 0}}}.
    """
    if not any(len(e) for e in events):
        raise ValueError("the validation clips hold no reference events: cannot choose a "
                         "localisation read-out")
    table: dict[str, dict[int, float]] = {}
    table0: dict[str, dict[int, float]] = {}
    for name in candidate_names(outputs):
        scores = list(readout(outputs, name))
        table[name], table0[name] = {}, {}
        for m in median_filters:
            table[name][int(m)] = psds(scores, events, hop_s, clip_duration, median_filter=int(m))
            table0[name][int(m)] = psds(scores, events, hop_s, clip_duration, median_filter=int(m),
                                        alpha_st=0.0)
    # Remaining ties go to the first in a fixed order: ungated before gated, shorter filters first.
    best_name, best_filter = max(((n, m) for n in table for m in table[n]),
                                 key=lambda nm: (table[nm[0]][nm[1]], table0[nm[0]][nm[1]]))
    scores = readout(outputs, best_name)
    n_classes = scores.shape[-1]
    f1 = {}
    for t in thresholds:
        est = [frame_probs_to_events(s, hop_s, float(t), best_filter, clip_duration) for s in scores]
        f1[float(t)] = event_based_metrics(events, est, n_classes, clip_duration=clip_duration)["f1"]
    best_threshold = max(f1, key=lambda t: f1[t])
    return {"readout": best_name, "median_filter": best_filter, "threshold": best_threshold,
            "val_psds1": table[best_name][best_filter], "val_psds_alpha0": table0[best_name][best_filter],
            "val_event_f1": f1[best_threshold],
            "candidates": {n: {str(m): v for m, v in row.items()} for n, row in table.items()},
            "candidates_alpha0": {n: {str(m): v for m, v in row.items()} for n, row in table0.items()}}


def postprocessing_path(workdir: str) -> str:
    return os.path.join(workdir, POSTPROCESSING)


def load_postprocessing(workdir: str, checkpoint: dict) -> dict | None:
    """The stored choice if it was made for `checkpoint` ({"kind", "step"}), else None."""
    path = postprocessing_path(workdir)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        stored = json.load(f)
    if stored.get("checkpoint") != checkpoint:
        return None
    return stored


def save_postprocessing(workdir: str, choice: dict, checkpoint: dict) -> dict:
    stored = dict(choice, checkpoint=checkpoint)
    fileio.write_json(postprocessing_path(workdir), stored)
    return stored
