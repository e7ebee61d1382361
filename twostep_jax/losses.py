"""The multi-task loss: L = BCE(clip_probs, weak labels) + alpha * MSE(reconstruction, log-mel).

Means as the released code (`BCELoss`/`MSELoss` defaults): BCE over [batch, classes], MSE over
[batch, time, mel]; the reconstruction target is the z-scored input log-mel.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# PyTorch's BCELoss clamps log terms at -100; clipping probabilities keeps log finite and the
# gradient defined when a head saturates at exactly 0 or 1 (e.g. in bfloat16).
_PROB_EPS = 1e-7


def binary_cross_entropy(probs: jax.Array, targets: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """Mean BCE of probabilities `probs` [B, K] against multi-hot `targets` [B, K].

    `mask` [B] (1 = real clip, 0 = padding) restricts the mean to real clips.
    """
    p = jnp.clip(probs.astype(jnp.float32), _PROB_EPS, 1.0 - _PROB_EPS)
    t = targets.astype(jnp.float32)
    per_elem = -(t * jnp.log(p) + (1.0 - t) * jnp.log1p(-p))
    return _masked_mean(per_elem, mask)


def reconstruction_loss(reconstruction: jax.Array, logmel: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """Mean squared error between the decoder output and the input log-mel, both [B, T, F]."""
    diff = reconstruction.astype(jnp.float32) - logmel.astype(jnp.float32)
    return _masked_mean(jnp.square(diff), mask)


def _masked_mean(values: jax.Array, mask: jax.Array | None) -> jax.Array:
    if mask is None:
        return jnp.mean(values)
    m = mask.astype(jnp.float32).reshape(mask.shape + (1,) * (values.ndim - 1))
    per_clip = values[0].size
    return jnp.sum(values * m) / jnp.maximum(jnp.sum(m) * per_clip, 1.0)


def sed_loss(outputs: dict, targets: jax.Array, logmel: jax.Array, alpha: float,
             mask: jax.Array | None = None) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Total loss and its terms `{"loss", "bce", "reconstruction_loss"}` (all scalars).

    Models without a decoder (baselines) report reconstruction_loss 0 and ignore alpha, as the
    released `main.py` adds the MSE term only for the MTL model.
    """
    bce = binary_cross_entropy(outputs["clip_probs"], targets, mask)
    if "reconstruction" in outputs:
        rec = reconstruction_loss(outputs["reconstruction"], logmel, mask)
    else:
        rec = jnp.zeros((), jnp.float32)
    total = bce + alpha * rec
    return total, {"loss": total, "bce": bce, "reconstruction_loss": rec}
