"""Clip-level metrics exactly as the paper's tables (released `utils.py`).

"micro-P"/"macro-P" in Tables IV-V are sklearn `average_precision_score` with average='micro' /
'macro' (area under the precision-recall curve, threshold independent), and AUC is
`roc_auc_score` with its default average='macro'. Classes with no positive (or no negative) clip
in the evaluated set have no defined AP/AUC: they are excluded from the macro averages and listed,
instead of producing NaN or an exception.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score


def clip_metrics(targets: np.ndarray, probs: np.ndarray, class_names: Sequence[str] | None = None) -> dict:
    """Clip-level tagging metrics of `probs` [N, K] against multi-hot `targets` [N, K].

    Returns {"micro_ap", "macro_ap", "macro_auc", "per_class": {name: {"ap", "auc", "positives"}},
    "excluded_classes": [...], "num_clips"}.
    """
    targets = np.asarray(targets)
    probs = np.asarray(probs, dtype=np.float64)
    if targets.shape != probs.shape or targets.ndim != 2:
        raise ValueError(f"targets {targets.shape} and probs {probs.shape} must both be [clips, classes]")
    if not np.all(np.isfinite(probs)):
        raise ValueError("predicted probabilities contain NaN or inf")
    n, k = targets.shape
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    if len(names) != k:
        raise ValueError(f"{len(names)} class names for {k} classes")
    targets = (targets > 0.5).astype(np.int64)
    positives = targets.sum(axis=0)
    defined = (positives > 0) & (positives < n)

    per_class: dict[str, dict] = {}
    for j, name in enumerate(names):
        entry = {"positives": int(positives[j]), "ap": None, "auc": None}
        if defined[j]:
            entry["ap"] = float(average_precision_score(targets[:, j], probs[:, j]))
            entry["auc"] = float(roc_auc_score(targets[:, j], probs[:, j]))
        per_class[name] = entry
    if not defined.any():
        raise ValueError("no class has both positive and negative clips: AP/AUC are undefined")
    return {
        "micro_ap": float(average_precision_score(targets, probs, average="micro")),
        "macro_ap": float(average_precision_score(targets[:, defined], probs[:, defined], average="macro")),
        "macro_auc": float(roc_auc_score(targets[:, defined], probs[:, defined], average="macro")),
        "per_class": per_class,
        "excluded_classes": [names[j] for j in range(k) if not defined[j]],
        "num_clips": int(n),
    }
