"""twostep_jax.metrics.clip: the paper's clip metrics against sklearn."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from twostep_jax.metrics.clip import clip_metrics


def test_clip_metrics_equal_sklearn():
    rng = np.random.default_rng(1)
    t = (rng.uniform(size=(200, 7)) < 0.2).astype(np.float32)
    p = np.clip(t * 0.4 + rng.uniform(size=t.shape) * 0.7, 0, 1)
    m = clip_metrics(t, p, [f"c{i}" for i in range(7)])
    assert m["micro_ap"] == pytest.approx(average_precision_score(t, p, average="micro"))
    assert m["macro_ap"] == pytest.approx(average_precision_score(t, p, average="macro"))
    assert m["macro_auc"] == pytest.approx(roc_auc_score(t, p))
    assert m["per_class"]["c3"]["ap"] == pytest.approx(average_precision_score(t[:, 3], p[:, 3]))
    assert m["excluded_classes"] == []


def test_class_without_positives_is_excluded_not_nan():
    rng = np.random.default_rng(2)
    t = (rng.uniform(size=(50, 4)) < 0.3).astype(np.float32)
    t[:, 2] = 0
    p = rng.uniform(size=t.shape)
    m = clip_metrics(t, p, ["a", "b", "c", "d"])
    keep = [0, 1, 3]
    assert m["excluded_classes"] == ["c"]
    assert m["per_class"]["c"] == {"positives": 0, "ap": None, "auc": None}
    assert m["macro_ap"] == pytest.approx(average_precision_score(t[:, keep], p[:, keep], average="macro"))
    assert m["macro_auc"] == pytest.approx(roc_auc_score(t[:, keep], p[:, keep]))
    assert np.isfinite(m["micro_ap"])
    with pytest.raises(ValueError, match="NaN"):
        clip_metrics(t, np.full_like(p, np.nan))
