"""Classification networks (pooling heads): class time-frequency map -> clip probabilities.

Every head returns a dict with at least
  * `clip_probs`   [B, K]        float32 in [0, 1]: weak-label (clip-level) probabilities;
  * `frame_probs`  [B, T, K]     float32 in [0, 1]: frame-level class activity for localisation;
  * `segmentation` [B, K, T, F]  float32: the class T-F map the head pooled;
  * `frame_outputs` {name: [B, T, K] float32 in [0, 1]}: every frame-level signal the head can
    offer for localisation (`frame_probs` is one of them, the released model's). Evaluation
    chooses among them, and their gating by the clip probability, on validation PSDS
    (`evaluation/postprocess.py`).
Attention heads add their weights (`freq_attention`, `freq_pooled`, `time_attention` for the
two-step head, `tf_attention` for single-step T x F attention).

Heads compute in float32 whatever the backbone's dtype: they are cheap, and softmax/sigmoid
saturation in bfloat16 would otherwise leak into the probabilities.

Each head also states its multiply-adds per clip (`macs(config)`, dense count), which the
benchmark's analytic FLOPs use; `HEADS` maps the config's head names to the classes.
"""

from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np
import flax.linen as nn

from twostep_jax import config as C
from twostep_jax.config import ModelConfig
from twostep_jax.model.layers import ClassConv, ConvSettings, torch_linear_bias_init, torch_linear_kernel_init
from twostep_jax.model.ops import sort_descending


def _to_ktf(class_map: jax.Array) -> jax.Array:
    """[B, T, F, K] (channels-last conv output) -> [B, K, T, F] float32."""
    return jnp.transpose(class_map.astype(jnp.float32), (0, 3, 1, 2))


def logit(p: float) -> float:
    return float(np.log(p) - np.log1p(-p))


def class_output_bias(cfg: ModelConfig) -> float | None:
    """The initial bias of the layer whose output is a head's class probability, from
    `cfg.class_prior` (None: the released code's init).

    * GMP/GAP/GWRP and T x F attention: the class conv, whose sigmoid is pooled -> logit(prior).
    * two-step, content form: the time step's class Dense, whose sigmoid is pooled over time ->
      logit(prior).
    * None (the released init whatever `class_prior`):
      - two-step, released / paper-equation time steps: with the prior, the released form's
        validation micro-AP fell (0.446 -> 0.246 on the demo's data, lower on the seeded CPU
        table too; README, "The class-prior init on the other heads");
      - Atrous AP: its class branch is a log-softmax over classes (a bias common to all
        positions cancels), and its clip output already starts near sigmoid(-log K) = 1/(K+1).
    """
    if cfg.class_prior == 0.0 or cfg.head == C.ATROUS_ATTENTION:
        return None
    if cfg.head == C.TWO_STEP and cfg.attention_form != "content":
        return None
    return logit(cfg.class_prior)


def _class_conv(cfg: ModelConfig) -> nn.Conv:
    """The 1x1 class conv of a sigmoid class map, its bias from `class_output_bias`."""
    bias = class_output_bias(cfg)
    init = nn.initializers.zeros if bias is None else nn.initializers.constant(bias)
    return ClassConv(ConvSettings.of(cfg), cfg.classes, bias_init=init, name="class_conv")


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


def _identity_init(key, shape, dtype=jnp.float32):
    del key
    return jnp.eye(shape[0], shape[1], dtype=dtype)


class ContentTimeAttention(nn.Module):
    """Time step computed from content: per frame, Dense(K -> K) over the classes' mel-pooled
    evidence (in logit space) gives that frame's class logits and attention logits; the weights
    are shared over time, so shifting the input in time shifts the outputs
    (translation-equivariant), and the attention can follow the events instead of fixed positions.

    Both Dense layers start as the identity: at initialisation each class's frame probability
    is its own first-step output and its attention is the softmax over time of that evidence
    (auto-pooling), so every class's clip probability depends on its own map from the first
    step. (With PyTorch's random init the 41 classes' evidence is mixed at random, and in our
    runs the model stayed at chance for hundreds of steps.) The class Dense's bias starts at
    `class_bias` (`class_output_bias`: logit(class_prior); None = zero) and the attention's at
    zero: frames start near the label prior, i.e. "absent", instead of at 0.5, so training
    raises the frame outputs where a class's evidence is rather than lowering them everywhere
    else (a prior-probability init, as RetinaNet's).

    z: [B, K, T] in (0, 1) -> (clip [B, K], time attention [B, K, T], frame class probs [B, T, K]).
    clip = sum_t sigmoid(class_t) * softmax_t(attention_t), as the released form pools.
    """

    classes: int
    class_bias: float | None = None

    @nn.compact
    def __call__(self, z: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        p = jnp.clip(jnp.swapaxes(z, 1, 2), 1e-6, 1.0 - 1e-6)  # [B, T, K]
        evidence = jnp.log(p) - jnp.log1p(-p)  # logit
        dense = lambda name, bias: nn.Dense(  # noqa: E731
            self.classes, kernel_init=_identity_init, bias_init=nn.initializers.constant(bias),
            dtype=jnp.float32, param_dtype=jnp.float32, name=name)
        cla = jax.nn.sigmoid(dense("class_dense", self.class_bias or 0.0)(evidence))
        att = dense("attention_dense", 0.0)(evidence)
        weights = jax.nn.softmax(att, axis=1)  # over time
        return jnp.sum(cla * weights, axis=1), jnp.swapaxes(weights, 1, 2), cla


def _peak_normalised(weights: jax.Array) -> jax.Array:
    """[B, K, T] attention weights / their maximum over time -> [B, T, K] in [0, 1]."""
    peak = jnp.max(weights, axis=-1, keepdims=True)
    return jnp.swapaxes(weights / jnp.maximum(peak, 1e-12), 1, 2)


class TwoStepAttention(nn.Module):
    """2APAE's classification network: attention over mel bins, then over time (Table II)."""

    config: ModelConfig

    @staticmethod
    def macs(cfg: ModelConfig) -> int:
        """Class conv, 2 x Dense(F, F) over (K, T) rows, then 2 x Dense(T, T) over K rows
        (released / paper forms) or 2 x Dense(K, K) over T rows (content form)."""
        k, t, f = cfg.classes, cfg.frames, cfg.mels
        time_step = 2 * t * k * k if cfg.attention_form == "content" else 2 * k * t * t
        return t * f * cfg.channels[-1] * k + 2 * k * t * f * f + time_step

    @nn.compact
    def __call__(self, features: jax.Array, train: bool) -> dict:
        cfg = self.config
        # The mel step reads the class map as evidence: its bias stays as released.
        segmentation = _to_ktf(ClassConv(ConvSettings.of(cfg), cfg.classes, name="class_conv")(features))
        content = cfg.attention_form == "content"
        # The content form keeps the released mel step (a Dense over mel bins is already shared
        # over time) and replaces only the position-based time step.
        freq_form = "released_code" if content else cfg.attention_form
        freq_pooled, freq_attention = AttentionStep(cfg.mels, freq_form, name="freq_attention")(
            segmentation)
        # A convex combination of sigmoids is already in [0, 1] (the released code clamps anyway);
        # the paper-equation form has a linear class branch and needs the clamp.
        first_step = jnp.clip(jnp.swapaxes(freq_pooled, 1, 2), 0.0, 1.0)  # [B, T, K]
        if content:
            clip, time_attention, frame_class = ContentTimeAttention(
                cfg.classes, class_output_bias(cfg), name="time_attention")(freq_pooled)
        else:
            clip, time_attention = AttentionStep(cfg.frames, cfg.attention_form, name="time_attention")(
                freq_pooled)
        frame_outputs = {"freq_pooled": first_step, "time_attention": _peak_normalised(time_attention)}
        if content:
            frame_outputs["frame_class"] = frame_class
        return {
            "clip_probs": jnp.clip(clip, 0.0, 1.0),
            # The released model's frame output (the paper's figure): the first step's output.
            "frame_probs": first_step,
            "frame_outputs": frame_outputs,
            "segmentation": segmentation,
            "freq_attention": freq_attention,
            "freq_pooled": freq_pooled,
            "time_attention": time_attention,
        }


def gwrp_weights(n: int, r: float) -> np.ndarray:
    """Global weighted rank pooling weights r**i / sum_j r**j (r=0 -> max, r=1 -> mean)."""
    w = np.power(float(r), np.arange(n, dtype=np.float64))  # 0.0**0 == 1.0
    return (w / w.sum()).astype(np.float32)


class GlobalPooling(nn.Module):
    """Kong's baselines: sigmoid class map, then GMP, GAP or GWRP over all T x F positions.

    Frame activity is the mean over mel bins of the sigmoid map (Kong's frame-level output).
    """

    config: ModelConfig

    @staticmethod
    def macs(cfg: ModelConfig) -> int:
        """Class conv (+ GWRP's rank-weight dot product)."""
        positions = cfg.frames * cfg.mels
        return positions * cfg.channels[-1] * cfg.classes + (cfg.classes * positions if cfg.head == C.GWRP else 0)

    @nn.compact
    def __call__(self, features: jax.Array, train: bool) -> dict:
        cfg = self.config
        probs = jax.nn.sigmoid(_to_ktf(_class_conv(cfg)(features)))
        flat = probs.reshape(probs.shape[:2] + (-1,))
        if cfg.head == C.GMP:
            clip = jnp.max(flat, axis=-1)
        elif cfg.head == C.GAP:
            clip = jnp.mean(flat, axis=-1)
        else:
            ranked = sort_descending(flat)
            clip = ranked @ jnp.asarray(gwrp_weights(flat.shape[-1], cfg.gwrp_r))
        mean_over_mel = jnp.swapaxes(jnp.mean(probs, axis=-1), 1, 2)
        return {
            "clip_probs": clip,
            "frame_probs": mean_over_mel,
            "frame_outputs": {"mean_over_mel": mean_over_mel,
                              "max_over_mel": jnp.swapaxes(jnp.max(probs, axis=-1), 1, 2)},
            "segmentation": probs,
        }


def _two_1x1_convs_macs(cfg: ModelConfig) -> int:
    """Multiply-adds of an attention 1x1 conv and a class 1x1 conv over every T x F position."""
    return 2 * cfg.frames * cfg.mels * cfg.channels[-1] * cfg.classes


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

    macs = staticmethod(_two_1x1_convs_macs)

    @nn.compact
    def __call__(self, features: jax.Array, train: bool) -> dict:
        cfg = self.config
        att = ClassConv(ConvSettings.of(cfg), cfg.classes, kernel_init=nn.initializers.zeros, name="attention_conv")(features)
        cla = ClassConv(ConvSettings.of(cfg), cfg.classes, name="class_conv")(features)
        att = jnp.clip(jax.nn.sigmoid(_to_ktf(att)), 0.1, 0.9)
        cla = _to_ktf(jax.nn.log_softmax(cla.astype(jnp.float32), axis=-1))
        frame_class = jnp.swapaxes(jax.nn.sigmoid(_attention_pool(cla, att, (3,))), 1, 2)
        return {
            "clip_probs": jax.nn.sigmoid(_attention_pool(cla, att, (2, 3))),
            "frame_probs": frame_class,
            "frame_outputs": {"frame_class": frame_class,
                              "time_attention": _peak_normalised(jnp.sum(att, axis=3))},
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

    macs = staticmethod(_two_1x1_convs_macs)

    @nn.compact
    def __call__(self, features: jax.Array, train: bool) -> dict:
        cfg = self.config
        probs = jax.nn.sigmoid(_to_ktf(_class_conv(cfg)(features)))
        logits = _to_ktf(
            ClassConv(ConvSettings.of(cfg), cfg.classes, kernel_init=nn.initializers.zeros, name="attention_conv")(features)
        )
        b, k, t, f = logits.shape
        tf_attention = jax.nn.softmax(logits.reshape(b, k, t * f), axis=-1).reshape(b, k, t, f)
        freq_attention = jax.nn.softmax(logits, axis=-1)
        frame_class = jnp.swapaxes(jnp.sum(probs * freq_attention, axis=-1), 1, 2)
        return {
            "clip_probs": jnp.clip(jnp.sum(probs * tf_attention, axis=(2, 3)), 0.0, 1.0),
            "frame_probs": frame_class,
            "frame_outputs": {"frame_class": frame_class,
                              "time_attention": _peak_normalised(jnp.sum(tf_attention, axis=3))},
            "segmentation": probs,
            "tf_attention": tf_attention,
        }


HEADS = {
    C.TWO_STEP: TwoStepAttention,
    C.GMP: GlobalPooling,
    C.GAP: GlobalPooling,
    C.GWRP: GlobalPooling,
    C.ATROUS_ATTENTION: AtrousAttention,
    C.TF_ATTENTION: TFAttention,
}
assert set(HEADS) == set(C.HEAD_NAMES), "config.HEAD_NAMES and the implemented heads differ"
