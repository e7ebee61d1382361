"""2APAE and its baselines as one configurable Flax module, and the model registry.

    model = create_model("2apae", preset="paper")            # the released sizes
    variables = model.init(rng, logmel, train=False)          # {"params", "batch_stats"}
    out, updates = model.apply(variables, logmel, train=True, mutable=["batch_stats"])

`logmel` is `[batch, time, mel]` (z-scored log-mel). The output dict holds `clip_probs` [B, K],
`frame_probs` [B, T, K], `segmentation` [B, K, T, F], each head's attention weights, and for
2APAE the decoder's `reconstruction` [B, T, F].
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import flax.linen as nn

from twostep_jax.config import ModelConfig, model_config
from twostep_jax.model.heads import HEADS
from twostep_jax.model.layers import Backbone, ConvSettings, Decoder, compute_dtype


class SEDModel(nn.Module):
    """Segmentation backbone -> pooling head (+ decoder for the auxiliary reconstruction task)."""

    config: ModelConfig
    # The pmap axis over which BatchNorm syncs batch statistics in training; None under jit/eval.
    axis_name: str | None = None

    @property
    def input_shape(self) -> tuple[int, int]:
        """The `[time, mel]` shape of one input log-mel."""
        return self.config.input_shape

    @nn.compact
    def __call__(self, logmel: jax.Array, train: bool = False) -> dict[str, jax.Array]:
        cfg = self.config
        expected = (cfg.frames, cfg.mels)
        if logmel.ndim != 3 or tuple(logmel.shape[1:]) != expected:
            raise ValueError(
                f"model {cfg.name!r} expects log-mel input [batch, time={cfg.frames}, mel={cfg.mels}] "
                f"(the time-attention layers fix the frame count); got shape {tuple(logmel.shape)}"
            )
        x = logmel.astype(compute_dtype(cfg.dtype))[..., None]  # [B, T, F, 1]
        features = Backbone(cfg, self.axis_name, name="encoder")(x, train)
        outputs = dict(HEADS[cfg.head](cfg, name="classifier")(features, train))
        if cfg.decoder:
            # The decoder reads the 256-channel encoder map, not the class map (paper Sec. IV-D).
            decoder = Decoder(ConvSettings.of(cfg), cfg.decoder_channels, cfg.decoder_output == "linear",
                              self.axis_name, name="decoder")
            outputs["reconstruction"] = decoder(features, train)
        return outputs


def create_model(name: str, preset: str = "paper", axis_name: str | None = None,
                 **overrides: Any) -> SEDModel:
    """A registered model (`2apae`, `gmp`, `gap`, `gwrp`, `atrous_ap`, `attention`) at a preset
    size (`paper`, `cpu_small`, `test_tiny`), with any `ModelConfig` field overridden
    (e.g. `frames=`, `mels=`, `classes=`, `dtype="bfloat16"`, `alpha` is a training setting)."""
    return SEDModel(model_config(name, preset, **overrides), axis_name=axis_name)


def model_from_config(config: ModelConfig | dict, axis_name: str | None = None) -> SEDModel:
    if isinstance(config, dict):
        config = ModelConfig.from_dict(config)
    return SEDModel(config, axis_name=axis_name)


def abstract_variables(model: SEDModel, batch: int = 1) -> Any:
    """Shapes/dtypes of `{"params", "batch_stats"}` without allocating or running anything."""
    x = jax.ShapeDtypeStruct((batch,) + model.input_shape, jnp.float32)
    return jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros(x.shape, x.dtype), train=False))


def count_params(params: Any) -> int:
    return int(sum(math.prod(p.shape) for p in jax.tree.leaves(params)))
