"""twostep_jax.losses against a numpy reference."""

import jax.numpy as jnp
import numpy as np

from twostep_jax.losses import binary_cross_entropy, reconstruction_loss, sed_loss


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
