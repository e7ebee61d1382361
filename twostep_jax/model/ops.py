"""Custom-VJP operations the models use where XLA:CPU's own is slow: a convolution whose weight
gradient is one GEMM per kernel tap, and a descending sort on integer keys (GWRP's pooling).

**Convolution.** XLA:CPU computes the *weight* gradient of a wide convolution very slowly: on the 2-core
development machine a 3×3 256→256 conv on 4×311×64 maps takes ~10 GFLOP/s for the weight
gradient against ~150 GFLOP/s for the forward and the input gradient (issue 6; BENCHMARKS.md).
The same gradient written as nine GEMMs, one per kernel tap, runs 4–8× faster.

:func:`shifted_gemm_conv` is a drop-in replacement for ``jax.lax.conv_general_dilated`` (usable
as ``flax.linen.Conv(..., conv_general_dilated=shifted_gemm_conv)``). Its forward *is* the lax
convolution; its VJP is hand-written (``jax.custom_vjp``):

* weight gradient: for every tap (i, j), ``dW[i, j] = window(i, j)^T @ dy`` contracting over
  (batch, H, W), where window(i, j) is the padded input shifted by (i·dh, j·dw); float32
  accumulation, result in the kernel's dtype;
* input gradient: XLA's own transposed convolution (the linear transpose of the forward). It
  runs at forward speed on XLA:CPU, faster than the shifted-GEMM formulation of the same sum
  (measured 101–156 vs 35–111 GFLOP/s from 32 to 256 channels).

Which convolutions take the GEMM path: 2-D, NHWC/HWIO/NHWC, stride 1, no input (lhs) dilation,
any kernel (rhs) dilation and padding ('SAME', 'VALID' or explicit pairs), one feature/batch
group — and at least ``min_out_features`` output channels (default 128). XLA's weight gradient is
fast below that (measured: 32→32 ~3×, 128→64 ~2× faster than the GEMMs) and collapses above it
(64→128 ~4×, 256→256 ~5–8× slower), so narrower convolutions, like anything unsupported, are
passed to ``lax.conv_general_dilated`` unchanged.

These figures are for XLA:CPU's default convolutions in jax 0.10, which run through YNNPACK. With
XLA's Eigen convolutions instead (:mod:`twostep_jax.backend`, on by default in the entry points)
XLA's own weight gradient is fast as well; BENCHMARKS.md has the paper model under both.

:func:`select_conv` maps a config string ("xla", "shifted_gemm", "auto") to the callable.

**Sort.** :func:`sort_descending` sorts float32 through int32 keys with a hand-written VJP
(XLA:CPU's float comparator sort is ~5x slower).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from twostep_jax.backend import eigen_convolutions_requested
from twostep_jax.config import CONV_IMPLS

__all__ = ["MIN_OUT_FEATURES", "is_supported", "select_conv", "shifted_gemm_conv", "sort_descending"]

# Narrowest output width for which the GEMM weight gradient beats XLA's (see module docstring).
MIN_OUT_FEATURES = 128

# The only layout handled natively; flax's nn.Conv produces exactly this.
_NHWC = ("NHWC", "HWIO", "NHWC")


def is_supported(lhs_shape: Sequence[int], rhs_shape: Sequence[int], window_strides,
                 lhs_dilation, dimension_numbers, feature_group_count: int = 1,
                 batch_group_count: int = 1) -> bool:
    """Whether the GEMM weight gradient applies (2-D NHWC, stride 1, no lhs dilation, 1 group)."""
    trivial = lambda seq: seq is None or all(s == 1 for s in seq)  # noqa: E731
    if len(lhs_shape) != 4 or len(rhs_shape) != 4 or dimension_numbers is None:
        return False  # (lax's default layout is NCHW/OIHW)
    if not (trivial(window_strides) and trivial(lhs_dilation)):
        return False
    if feature_group_count != 1 or batch_group_count != 1:
        return False
    nhwc = lax.conv_dimension_numbers(lhs_shape, rhs_shape, _NHWC)
    return lax.conv_dimension_numbers(lhs_shape, rhs_shape, dimension_numbers) == nhwc


def shifted_gemm_conv(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                      dimension_numbers=None, feature_group_count=1, batch_group_count=1,
                      precision=None, preferred_element_type=None, *,
                      min_out_features: int = MIN_OUT_FEATURES, **kwargs):
    """``lax.conv_general_dilated`` with a GEMM-per-tap weight gradient (see module docstring).

    Arguments as ``lax.conv_general_dilated``; the GEMM path needs lhs (N, H, W, Cin),
    rhs (KH, KW, Cin, Cout) with Cout >= ``min_out_features``, out (N, Ho, Wo, Cout).
    Returns the convolution in ``preferred_element_type`` (default: the inputs' dtype).
    """
    native = (kwargs.get("out_sharding") is None
              and is_supported(lhs.shape, rhs.shape, window_strides, lhs_dilation,
                               dimension_numbers, feature_group_count, batch_group_count)
              and rhs.shape[3] >= min_out_features)
    if not native:
        return lax.conv_general_dilated(
            lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
            rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
            feature_group_count=feature_group_count, batch_group_count=batch_group_count,
            precision=precision, preferred_element_type=preferred_element_type, **kwargs)
    dilation = (1, 1) if rhs_dilation is None else tuple(int(d) for d in rhs_dilation)
    pads = _explicit_padding(padding, lhs.shape, rhs.shape, dilation)
    if isinstance(precision, list):  # custom_vjp's static arguments must be hashable
        precision = tuple(precision)
    out_dtype = None if preferred_element_type is None else jnp.dtype(preferred_element_type)
    return _conv(lhs, rhs, pads, dilation, precision, out_dtype)


def _explicit_padding(padding, lhs_shape, rhs_shape, dilation) -> tuple[tuple[int, int], ...]:
    """'SAME' / 'VALID' / pairs -> ((top, bottom), (left, right)) for NHWC lhs, HWIO rhs."""
    if isinstance(padding, str):
        extent = [(k - 1) * d + 1 for k, d in zip(rhs_shape[:2], dilation)]
        pads = lax.padtype_to_pads(lhs_shape[1:3], extent, (1, 1), padding)
        return tuple((int(lo), int(hi)) for lo, hi in pads)
    pads = tuple((int(lo), int(hi)) for lo, hi in padding)
    if len(pads) != 2:
        raise ValueError(f"expected 2 spatial (low, high) padding pairs, got {padding!r}")
    return pads


def _lax_conv(x, w, pads, dilation, precision, out_dtype):
    """x (N, H, W, Cin), w (KH, KW, Cin, Cout) -> (N, Ho, Wo, Cout): the plain convolution."""
    return lax.conv_general_dilated(x, w, (1, 1), pads, rhs_dilation=dilation,
                                    dimension_numbers=_NHWC, precision=precision,
                                    preferred_element_type=out_dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def _conv(x, w, pads, dilation, precision, out_dtype):
    return _lax_conv(x, w, pads, dilation, precision, out_dtype)


def _conv_fwd(x, w, pads, dilation, precision, out_dtype):
    return _lax_conv(x, w, pads, dilation, precision, out_dtype), (x, w)


def _conv_bwd(pads, dilation, precision, out_dtype, residuals, dy):
    x, w = residuals
    dy = dy.astype(x.dtype)  # the cotangent comes in the output dtype (preferred_element_type)
    dx = _input_grad(dy, w, x.shape, pads, dilation, precision)
    dw = _weight_grad(x, dy, w.shape, pads, dilation, precision)
    return dx.astype(x.dtype), dw.astype(w.dtype)


_conv.defvjp(_conv_fwd, _conv_bwd)


def _input_grad(dy, w, x_shape, pads, dilation, precision):
    """dX (N, H, W, Cin): the transpose of the (linear in x) forward, i.e. XLA's own dX conv."""
    forward = lambda x: _lax_conv(x, w, pads, dilation, precision, None)  # noqa: E731
    return jax.linear_transpose(forward, jax.ShapeDtypeStruct(x_shape, dy.dtype))(dy)[0]


def _weight_grad(x, dy, w_shape, pads, dilation, precision):
    """dW (KH, KW, Cin, Cout) as one GEMM per tap over (N, Ho, Wo), accumulated in float32.

    x (N, H, W, Cin), dy (N, Ho, Wo, Cout). dy is the GEMMs' left operand: each tap yields
    (Cout, Cin), one small transpose at the end. With the window on the left XLA:CPU copies every
    window into a transposed (Cin, N·Ho·Wo) layout first (measured 1.7× slower at 256→256).
    """
    kh, kw, cin, cout = w_shape
    (dh, dw), (_, ho, wo, _) = dilation, dy.shape
    xp = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    contract_nhw = (((0, 1, 2), (0, 1, 2)), ((), ()))
    taps = []
    for i in range(kh):
        for j in range(kw):
            # The input pixels that tap (i, j) meets for every output position: (N, Ho, Wo, Cin).
            window = lax.slice(xp, (0, i * dh, j * dw, 0), (xp.shape[0], i * dh + ho, j * dw + wo, cin))
            taps.append(lax.dot_general(dy, window, contract_nhw, precision=precision,
                                        preferred_element_type=jnp.float32))
    return jnp.stack(taps).reshape(kh, kw, cout, cin).transpose(0, 1, 3, 2)


def select_conv(impl: str) -> Callable[..., Any]:
    """A ``conv_general_dilated``-compatible callable for ``flax.linen.Conv``.

    "xla" -> ``lax.conv_general_dilated``; "shifted_gemm" -> :func:`shifted_gemm_conv`;
    "auto" -> shifted_gemm on the CPU backend with YNNPACK convolutions (XLA:CPU's default in jax
    0.10, whose weight gradient is slow), lax otherwise: with Eigen convolutions
    (:mod:`twostep_jax.backend`) lax measured 1.15x faster than shifted_gemm on the paper model's
    CPU train step (BENCHMARKS.md), and cuDNN / TPU convolutions need no help.
    """
    if impl == "xla":
        return lax.conv_general_dilated
    if impl == "shifted_gemm":
        return shifted_gemm_conv
    if impl == "auto":
        slow_weight_grad = jax.default_backend() == "cpu" and not eigen_convolutions_requested()
        return shifted_gemm_conv if slow_weight_grad else lax.conv_general_dilated
    raise ValueError(f"unknown conv_impl {impl!r}; expected one of {CONV_IMPLS}")


# ----------------------------------------------------------------------------- sort


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
