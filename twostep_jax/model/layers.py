"""The building blocks every model is assembled from: conv-BN-ReLU, CNN blocks, backbones, decoder.

Layout is channels-last throughout: feature maps are `[batch, time, mel, channels]` (NHWC with
time as H and mel as W, as the released code's `(B, 1, 311, 64)` NCHW input).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable

import jax
import jax.numpy as jnp
import flax.linen as nn

from twostep_jax.config import ATROUS, VGG_POOLED, ModelConfig
from twostep_jax.model import ops

# The released code's `init_layer`: U(-b, b) with b = sqrt(6 / fan_in), i.e. He-uniform.
he_uniform = nn.initializers.variance_scaling(2.0, "fan_in", "uniform")
# PyTorch's nn.Linear default: kernel and bias ~ U(+-1/sqrt(fan_in)).
torch_linear_kernel_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def torch_linear_bias_init(fan_in: int) -> Callable:
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def compute_dtype(dtype: str):
    """The jnp dtype of a config's compute-dtype string ("float32" / "bfloat16")."""
    return jnp.bfloat16 if dtype == "bfloat16" else jnp.float32


@dataclasses.dataclass(frozen=True)
class ConvSettings:
    """How every convolution and BatchNorm of a model computes (from its ModelConfig)."""

    dtype: str = "float32"  # compute dtype; parameters stay float32
    conv_impl: str = "auto"  # see model/ops.select_conv
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-5

    @classmethod
    def of(cls, config: ModelConfig) -> "ConvSettings":
        return cls(config.dtype, config.conv_impl, config.bn_momentum, config.bn_epsilon)


def make_conv(settings: ConvSettings, features: int, kernel_size: int = 1, dilation: int = 1,
              use_bias: bool = False, kernel_init=he_uniform, bias_init=nn.initializers.zeros,
              name: str | None = None) -> nn.Conv:
    """A stride-1 'same' convolution with float32 parameters computing in `settings.dtype`."""
    pad = dilation * (kernel_size - 1) // 2
    return nn.Conv(
        features,
        (kernel_size, kernel_size),
        padding=((pad, pad), (pad, pad)),
        kernel_dilation=(dilation, dilation),
        use_bias=use_bias,
        kernel_init=kernel_init,
        bias_init=bias_init,
        dtype=compute_dtype(settings.dtype),
        param_dtype=jnp.float32,
        conv_general_dilated=ops.select_conv(settings.conv_impl),
        name=name,
    )


class ConvBNReLU(nn.Module):
    """conv (no bias, He-uniform) -> BatchNorm -> ReLU: the released code's CNN sub-block."""

    settings: ConvSettings
    features: int
    kernel_size: int = 3
    dilation: int = 1
    relu: bool = True
    axis_name: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        x = make_conv(self.settings, self.features, self.kernel_size, self.dilation)(x)
        x = nn.BatchNorm(
            use_running_average=not train,
            momentum=self.settings.bn_momentum,
            epsilon=self.settings.bn_epsilon,
            dtype=compute_dtype(self.settings.dtype),
            param_dtype=jnp.float32,
            # Set to the pmap axis in training so every device normalises with the statistics of
            # the global batch and the running averages stay identical across devices.
            axis_name=self.axis_name if train else None,
        )(x)
        return nn.relu(x) if self.relu else x


class ConvBlock(nn.Module):
    """`n_convs` sub-blocks, then optionally a 3x3 stride-1 average pool counting the zero padding.

    The pool keeps the T x F size (Table I: K=3, S=1, P=1) and, like PyTorch's default
    `count_include_pad=True`, divides border windows by 9.
    """

    settings: ConvSettings
    features: int
    n_convs: int = 2
    kernel_size: int = 3
    dilation: int = 1
    pool: bool = True
    final_relu: bool = True
    axis_name: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        for i in range(self.n_convs):
            last = i == self.n_convs - 1
            x = ConvBNReLU(
                self.settings, self.features, self.kernel_size, self.dilation,
                relu=self.final_relu or not last, axis_name=self.axis_name,
            )(x, train)
        if self.pool:
            x = nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)), count_include_pad=True)
        return x


class Backbone(nn.Module):
    """The segmentation network's convolutional trunk: `[B, T, F, 1] -> [B, T, F, C]`.

    * `vgg_pooled` (2APAE encoder, Table I): blocks of 2 convs + average pool.
    * `vgg_bottleneck` (Kong's GMP/GAP/GWRP): blocks of 2 convs, no pooling.
    * `atrous` (released Atrous-AP adaptation): one dilated 5x5 conv per stage, no pooling.
    """

    config: ModelConfig
    axis_name: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        cfg = self.config
        dilations = cfg.dilations or (1,) * len(cfg.channels)
        for features, dilation in zip(cfg.channels, dilations):
            x = ConvBlock(
                ConvSettings.of(cfg), features,
                n_convs=1 if cfg.backbone == ATROUS else 2,
                kernel_size=cfg.kernel_size,
                dilation=dilation,
                pool=cfg.backbone == VGG_POOLED,
                axis_name=self.axis_name,
            )(x, train)
        return x


class Decoder(nn.Module):
    """The auxiliary task's decoder (Table III): `[B, T, F, C] -> [B, T, F]` reconstruction.

    Blocks of decreasing width, then a 1-channel block. As released, the final sub-block ends in
    ReLU (so the reconstruction is non-negative although its z-scored target is not);
    `decoder_output="linear"` drops that last ReLU.
    """

    settings: ConvSettings
    channels: tuple[int, ...]
    linear_output: bool = False
    axis_name: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        for features in self.channels:
            x = ConvBlock(self.settings, features, axis_name=self.axis_name)(x, train)
        x = ConvBlock(self.settings, 1, final_relu=not self.linear_output, axis_name=self.axis_name)(x, train)
        return x[..., 0].astype(jnp.float32)


ClassConv = functools.partial(make_conv, kernel_size=1, use_bias=True)
ClassConv.__doc__ = ("1x1 class convolution to K classes with bias (He-uniform kernel, bias zero unless "
                     "`bias_init` says otherwise), no activation.")
