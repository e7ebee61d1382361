"""Classification networks (pooling heads): class time-frequency map -> clip probabilities.

Every head returns a dict with at least
  * `clip_probs`   [B, K]        float32 in [0, 1]: weak-label (clip-level) probabilities;
  * `frame_probs`  [B, T, K]     float32 in [0, 1]: frame-level class activity for localisation;
  * `segmentation` [B, K, T, F]  float32: the class T-F map the head pooled.
Attention heads add their weights (`freq_attention`, `freq_pooled`, `time_attention` for the
two-step head, `tf_attention` for single-step T x F attention).

Heads compute in float32 whatever the backbone's dtype: they are cheap, and softmax/sigmoid
saturation in bfloat16 would otherwise leak into the probabilities.
"""

from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np
import flax.linen as nn

from twostep_jax.config import ModelConfig
from twostep_jax.layers import ClassConv, torch_linear_bias_init, torch_linear_kernel_init


def _to_ktf(class_map: jax.Array) -> jax.Array:
    """[B, T, F, K] (channels-last conv output) -> [B, K, T, F] float32."""
    return jnp.transpose(class_map.astype(jnp.float32), (0, 3, 1, 2))


def _torch_dense(features: int, fan_in: int, name: str) -> nn.Dense:
    return nn.Dense(
        features,
        kernel_init=torch_linear_kernel_init,
        bias_init=torch_linear_bias_init(fan_in),
        dtype=jnp.float32,
        param_dtype=jnp.float32,
        name=name,
    )


class AttentionStep(nn.Module):
    """One attention step along the last axis of `z` [..., N] -> (pooled [...], weights [..., N]).

    Two Dense(N -> N) layers act on the last axis (shared over all other axes), one giving the
    class branch and one the attention logits.

    * `released_code` (default, the authors' code): pooled = sum(sigmoid(class) * softmax(att)).
    * `paper_equations` (eq. 8-15): pooled = sum(class * softmax(sigmoid(att))), linear class branch.
    """

    size: int
    form: str = "released_code"

    @nn.compact
    def __call__(self, z: jax.Array) -> tuple[jax.Array, jax.Array]:
        if z.shape[-1] != self.size:
            raise ValueError(f"{self.name} expects last axis {self.size}, got shape {z.shape}")
        cla = _torch_dense(self.size, self.size, "class_dense")(z)
        att = _torch_dense(self.size, self.size, "attention_dense")(z)
        if self.form == "released_code":
            cla, att = jax.nn.sigmoid(cla), att
        else:
            att = jax.nn.sigmoid(att)
        weights = jax.nn.softmax(att, axis=-1)
        return jnp.sum(cla * weights, axis=-1), weights


class TwoStepAttention(nn.Module):
    """2APAE's classification network: attention over mel bins, then over time (Table II)."""

    config: ModelConfig

    @nn.compact
    def __call__(self, features: jax.Array, train: bool) -> dict:
        cfg = self.config
        segmentation = _to_ktf(ClassConv(cfg, cfg.classes, name="class_conv")(features))
        freq_pooled, freq_attention = AttentionStep(cfg.mels, cfg.attention_form, name="freq_attention")(
            segmentation)
        clip, time_attention = AttentionStep(cfg.frames, cfg.attention_form, name="time_attention")(
            freq_pooled)
        # A convex combination of sigmoids is already in [0, 1] (the released code clamps anyway);
        # the paper-equation form has a linear class branch and needs the clamp.
        return {
            "clip_probs": jnp.clip(clip, 0.0, 1.0),
            "frame_probs": jnp.clip(jnp.swapaxes(freq_pooled, 1, 2), 0.0, 1.0),
            "segmentation": segmentation,
            "freq_attention": freq_attention,
            "freq_pooled": freq_pooled,
            "time_attention": time_attention,
        }


def _float_order_key(x: jax.Array) -> jax.Array:
    """float32 -> int32 keys in the same order (and back: the map is its own inverse).

    Non-negative floats' bit patterns already order like the floats; for negative ones the
    magnitude bits are flipped.
    """
    i = jax.lax.bitcast_convert_type(x, jnp.int32)
    return i ^ ((i >> 31) & jnp.int32(0x7FFFFFFF))


@jax.custom_vjp
def sort_descending(x: jax.Array) -> jax.Array:
    """`x` float32 sorted in descending order along its last axis; equals -jnp.sort(-x).

    Why not jnp.sort: XLA:CPU sorts float32 through a generic comparator, ~5x slower than int32
    keys; GWRP sorts every class map ([B, K, T·F]) each step and dominated the baseline's CPU
    step. The VJP sends each sorted position's cotangent back to the element that holds it;
    elements tied in value share their positions' cotangents equally (a symmetric choice:
    the sort is not differentiable at ties, where jnp.sort picks an order).
    """
    keys = jnp.sort(_float_order_key(x), axis=-1)[..., ::-1]
    return jax.lax.bitcast_convert_type(_float_order_key(keys), x.dtype)


def _sort_descending_fwd(x):
    y = sort_descending(x)
    return y, (x, y)


def _sort_descending_bwd(residuals, g):
    x, y = residuals
    n = x.shape[-1]
    ascending, g_ascending = y[..., ::-1].reshape(-1, n), g[..., ::-1].reshape(-1, n)
    # x's element i occupies the ascending positions [lo_i, hi_i): one position unless tied.
    lo = jax.vmap(jnp.searchsorted)(ascending, x.reshape(-1, n))
    positions = jnp.arange(n, dtype=lo.dtype)
    run_ends = jnp.concatenate([ascending[:, 1:] != ascending[:, :-1], jnp.ones_like(ascending[:, :1], bool)], -1)
    last_of_run = jax.lax.cummin(jnp.where(run_ends, positions, n), axis=1, reverse=True)
    hi = jnp.take_along_axis(last_of_run, lo, -1) + 1
    cumulative = jnp.pad(jnp.cumsum(g_ascending, axis=-1), ((0, 0), (1, 0)))
    tied = (jnp.take_along_axis(cumulative, hi, -1) - jnp.take_along_axis(cumulative, lo, -1)) / (hi - lo)
    # Untied elements take their cotangent directly (the cumsum difference would lose precision).
    grad = jnp.where(hi - lo == 1, jnp.take_along_axis(g_ascending, lo, -1), tied)
    return (grad.reshape(x.shape),)


sort_descending.defvjp(_sort_descending_fwd, _sort_descending_bwd)


def gwrp_weights(n: int, r: float) -> np.ndarray:
    """Global weighted rank pooling weights r**i / sum_j r**j (r=0 -> max, r=1 -> mean)."""
    w = np.power(float(r), np.arange(n, dtype=np.float64))  # 0.0**0 == 1.0
    return (w / w.sum()).astype(np.float32)


class GlobalPooling(nn.Module):
    """Kong's baselines: sigmoid class map, then GMP, GAP or GWRP over all T x F positions.

    Frame activity is the mean over mel bins of the sigmoid map (Kong's frame-level output).
    """

    config: ModelConfig

    @nn.compact
    def __call__(self, features: jax.Array, train: bool) -> dict:
        cfg = self.config
        probs = jax.nn.sigmoid(_to_ktf(ClassConv(cfg, cfg.classes, name="class_conv")(features)))
        flat = probs.reshape(probs.shape[:2] + (-1,))
        if cfg.head == "gmp":
            clip = jnp.max(flat, axis=-1)
        elif cfg.head == "gap":
            clip = jnp.mean(flat, axis=-1)
        else:
            ranked = sort_descending(flat)
            clip = ranked @ jnp.asarray(gwrp_weights(flat.shape[-1], cfg.gwrp_r))
        return {
            "clip_probs": clip,
            "frame_probs": jnp.swapaxes(jnp.mean(probs, axis=-1), 1, 2),
            "segmentation": probs,
        }


def _attention_pool(values: jax.Array, weights: jax.Array, axes: tuple[int, ...]) -> jax.Array:
    return jnp.sum(values * weights, axis=axes) / jnp.sum(weights, axis=axes)


class AtrousAttention(nn.Module):
    """The released adaptation of Ren et al.'s `Attention2d` (ref §3.2), then a final sigmoid.

    attention = clamp(sigmoid(1x1 conv), 0.1, 0.9) (its kernel starts at zero), normalised over
    T x F; class branch = log_softmax over classes; clip = sigmoid(sum(att * cla)). The pooled
    log-probability is <= 0, so clip probabilities are <= 0.5 — the "squashing after attention"
    the paper reports.
    """

    config: ModelConfig

    @nn.compact
    def __call__(self, features: jax.Array, train: bool) -> dict:
        cfg = self.config
        att = ClassConv(cfg, cfg.classes, kernel_init=nn.initializers.zeros, name="attention_conv")(features)
        cla = ClassConv(cfg, cfg.classes, name="class_conv")(features)
        att = jnp.clip(jax.nn.sigmoid(_to_ktf(att)), 0.1, 0.9)
        cla = _to_ktf(jax.nn.log_softmax(cla.astype(jnp.float32), axis=-1))
        return {
            "clip_probs": jax.nn.sigmoid(_attention_pool(cla, att, (2, 3))),
            "frame_probs": jnp.swapaxes(jax.nn.sigmoid(_attention_pool(cla, att, (3,))), 1, 2),
            "segmentation": cla,
            "tf_attention": att / jnp.sum(att, axis=(2, 3), keepdims=True),
        }


class TFAttention(nn.Module):
    """Plain single-step attention pooling over all T x F positions.

    clip = sum over (t, f) of sigmoid(class map) * softmax_{t,f}(attention logits), with the
    attention logits from a second 1x1 conv (zero-initialised, so pooling starts as GAP). The
    frame activity pools each frame over mel bins with the same logits.
    """

    config: ModelConfig

    @nn.compact
    def __call__(self, features: jax.Array, train: bool) -> dict:
        cfg = self.config
        probs = jax.nn.sigmoid(_to_ktf(ClassConv(cfg, cfg.classes, name="class_conv")(features)))
        logits = _to_ktf(
            ClassConv(cfg, cfg.classes, kernel_init=nn.initializers.zeros, name="attention_conv")(features)
        )
        b, k, t, f = logits.shape
        tf_attention = jax.nn.softmax(logits.reshape(b, k, t * f), axis=-1).reshape(b, k, t, f)
        freq_attention = jax.nn.softmax(logits, axis=-1)
        return {
            "clip_probs": jnp.clip(jnp.sum(probs * tf_attention, axis=(2, 3)), 0.0, 1.0),
            "frame_probs": jnp.swapaxes(jnp.sum(probs * freq_attention, axis=-1), 1, 2),
            "segmentation": probs,
            "tf_attention": tf_attention,
        }


HEADS = {
    "two_step": TwoStepAttention,
    "gmp": GlobalPooling,
    "gap": GlobalPooling,
    "gwrp": GlobalPooling,
    "atrous_attention": AtrousAttention,
    "tf_attention": TFAttention,
}
