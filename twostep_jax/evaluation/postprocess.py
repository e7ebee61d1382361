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
2. gap filling: for that read-out, the gap-filling length (`metrics.sed.fill_gaps`: merge a
   class's detections separated by fewer than L frames, applied before the median filter) and
   the median filter again, jointly, by the same rule; L = 1 (off) wins ties;
3. decision threshold: the one with the best event-based F1 (200 ms collar) for that choice.

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
FILL_GAPS = (1, 11, 21, 31)  # frames of 32 ms: off, gaps < 0.35 s, < 0.67 s, < 0.99 s
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
                          thresholds: Sequence[float] = THRESHOLDS,
                          fill_gaps: Sequence[int] = FILL_GAPS) -> dict[str, Any]:
    """Chooses read-out, median filter, gap filling and threshold on one split (see module
    docstring).

    `outputs` = `train.predict(..., keep_frames=True)` on the validation clips, `events` their
    reference events. Returns {"readout", "median_filter", "fill_gaps", "threshold", "val_psds1",
    "val_psds_alpha0", "val_event_f1", "candidates": {readout: {median_filter: psds1}},
    "candidates_alpha0": {...the same with alpha_st = 0}, "candidates_fill_gaps": {fill:
    {median_filter: psds1}} (for the chosen read-out), "candidates_fill_gaps_alpha0": {...}}.
    """
    if not any(len(e) for e in events):
        raise ValueError("the validation clips hold no reference events: cannot choose a "
                         "localisation read-out")

    def both(scores, m: int, fill: int) -> tuple[float, float]:
        return (psds(scores, events, hop_s, clip_duration, median_filter=m, fill=fill),
                psds(scores, events, hop_s, clip_duration, median_filter=m, fill=fill, alpha_st=0.0))

    table: dict[str, dict[int, float]] = {}
    table0: dict[str, dict[int, float]] = {}
    for name in candidate_names(outputs):
        scores = list(readout(outputs, name))
        table[name], table0[name] = {}, {}
        for m in median_filters:
            table[name][int(m)], table0[name][int(m)] = both(scores, int(m), 1)
    # Remaining ties go to the first in a fixed order: ungated before gated, shorter filters first.
    best_name, _ = max(((n, m) for n in table for m in table[n]),
                       key=lambda nm: (table[nm[0]][nm[1]], table0[nm[0]][nm[1]]))
    scores = readout(outputs, best_name)
    fills = [1] + [int(f) for f in fill_gaps if int(f) != 1]
    by_fill = {1: dict(table[best_name])}
    by_fill0 = {1: dict(table0[best_name])}
    for f in fills[1:]:
        by_fill[f], by_fill0[f] = {}, {}
        for m in median_filters:
            by_fill[f][int(m)], by_fill0[f][int(m)] = both(list(scores), int(m), f)
    best_fill, best_filter = max(((f, m) for f in fills for m in by_fill[f]),
                                 key=lambda fm: (by_fill[fm[0]][fm[1]], by_fill0[fm[0]][fm[1]]))
    n_classes = scores.shape[-1]
    f1 = {}
    for t in thresholds:
        est = [frame_probs_to_events(s, hop_s, float(t), best_filter, clip_duration, best_fill)
               for s in scores]
        f1[float(t)] = event_based_metrics(events, est, n_classes, clip_duration=clip_duration)["f1"]
    best_threshold = max(f1, key=lambda t: f1[t])
    as_str = lambda rows: {str(k): {str(m): v for m, v in row.items()} for k, row in rows.items()}
    return {"readout": best_name, "median_filter": best_filter, "fill_gaps": best_fill,
            "threshold": best_threshold,
            "val_psds1": by_fill[best_fill][best_filter], "val_psds_alpha0": by_fill0[best_fill][best_filter],
            "val_event_f1": f1[best_threshold],
            "candidates": as_str(table), "candidates_alpha0": as_str(table0),
            "candidates_fill_gaps": as_str(by_fill), "candidates_fill_gaps_alpha0": as_str(by_fill0)}


def postprocessing_path(workdir: str) -> str:
    return os.path.join(workdir, POSTPROCESSING)


def load_postprocessing(workdir: str, checkpoint: dict) -> dict | None:
    """The stored choice if it was made for `checkpoint` ({"kind", "step"}), else None."""
    path = postprocessing_path(workdir)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        stored = json.load(f)
    if stored.get("checkpoint") != checkpoint or "fill_gaps" not in stored:
        return None  # chosen for another checkpoint, or before gap filling was a candidate
    return stored


def save_postprocessing(workdir: str, choice: dict, checkpoint: dict) -> dict:
    stored = dict(choice, checkpoint=checkpoint)
    fileio.write_json(postprocessing_path(workdir), stored)
    return stored
