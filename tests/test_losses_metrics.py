"""Losses against a numpy reference; clip metrics against sklearn."""

import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from twostep_jax.losses import binary_cross_entropy, reconstruction_loss, sed_loss
from twostep_jax.metrics import clip_metrics


def test_bce_and_mse_equal_numpy_reference():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.01, 0.99, (6, 41)).astype(np.float32)
    t = (rng.uniform(size=(6, 41)) < 0.1).astype(np.float32)
    ref_bce = np.mean(-(t * np.log(p) + (1 - t) * np.log(1 - p)))
    np.testing.assert_allclose(float(binary_cross_entropy(jnp.asarray(p), jnp.asarray(t))), ref_bce, rtol=1e-5)
    rec = rng.normal(size=(6, 31, 8)).astype(np.float32)
    x = rng.normal(size=(6, 31, 8)).astype(np.float32)
    np.testing.assert_allclose(float(reconstruction_loss(jnp.asarray(rec), jnp.asarray(x))),
                               np.mean((rec - x) ** 2), rtol=1e-5)
    total, terms = sed_loss({"clip_probs": p, "reconstruction": rec}, t, x, alpha=0.001)
    np.testing.assert_allclose(float(total), ref_bce + 0.001 * np.mean((rec - x) ** 2), rtol=1e-5)
    assert set(terms) == {"loss", "bce", "reconstruction_loss"}
    total0, _ = sed_loss({"clip_probs": p, "reconstruction": rec}, t, x, alpha=0.0)
    np.testing.assert_allclose(float(total0), ref_bce, rtol=1e-5)


def test_bce_is_finite_for_saturated_probabilities_and_mask_excludes_padding():
    p = jnp.array([[0.0, 1.0], [1.0, 0.0]])
    t = jnp.array([[1.0, 0.0], [1.0, 0.0]])
    assert np.isfinite(float(binary_cross_entropy(p, t)))
    # The padded second row must not count: loss equals that of the first row alone.
    p2 = jnp.array([[0.3, 0.6], [0.9, 0.9]])
    t2 = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    masked = float(binary_cross_entropy(p2, t2, mask=jnp.array([1.0, 0.0])))
    np.testing.assert_allclose(masked, float(binary_cross_entropy(p2[:1], t2[:1])), rtol=1e-6)


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
