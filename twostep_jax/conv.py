"""Convolution with a GEMM-per-tap backward pass for XLA:CPU.

XLA:CPU computes the *weight* gradient of a convolution slowly (measured ~35 GFLOP/s for a 3×3
256→256 conv on 311×64 maps on 2 cores, vs ~137 GFLOP/s for the same maths as nine GEMMs; see
issue 6). This module provides :func:`shifted_gemm_conv`, a drop-in replacement for
``jax.lax.conv_general_dilated`` (usable as ``flax.linen.Conv(..., conv_general_dilated=...)``)
whose forward is the plain lax convolution and whose VJP is hand-written:

* weight gradient: one GEMM per kernel tap, ``dW[i, j] = x_shifted(i, j)^T @ dy`` contracting
    over (batch, H, W), accumulated in float32;
* input gradient: the convolution of ``dy`` with the spatially flipped, in/out-transposed kernel
    (also the "full" correlation), done by lax or as shifted GEMMs — whichever measured faster on
    XLA:CPU (see ``_INPUT_GRAD_IMPL``).

Only the case the 2APAE / Atrous models need is handled natively: 2-D, NHWC/HWIO/NHWC, stride 1,
no input (lhs) dilation, any kernel (rhs) dilation, any explicit or 'SAME'/'VALID' padding,
``feature_group_count == batch_group_count == 1``. Anything else falls back to
``lax.conv_general_dilated`` unchanged, so the function is always safe to plug in.

Use :func:`select_conv` to pick the implementation from a config string.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["CONV_IMPLS", "select_conv", "shifted_gemm_conv", "is_supported"]

CONV_IMPLS = ("xla", "shifted_gemm", "auto")

# Spec (lhs, rhs, out) of the only layout handled natively; flax's nn.Conv produces exactly this.
_NHWC = lax.conv_dimension_numbers((1, 1, 1, 1), (1, 1, 1, 1), ("NHWC", "HWIO", "NHWC"))

# How the input gradient is computed: "lax" = XLA's transposed convolution, "gemm" = one GEMM per
# tap on the padded dy. Chosen by measurement on XLA:CPU (BENCHMARKS.md, "conv micro-benchmark").
_INPUT_GRAD_IMPL = "lax"


def _is_trivial(seq: Sequence[int] | None) -> bool:
    return seq is None or all(s == 1 for s in seq)


def is_supported(lhs_shape, rhs_shape, window_strides, lhs_dilation, dimension_numbers,
                                  feature_group_count, batch_group_count) -> bool:
    """Whether :func:`shifted_gemm_conv` handles this convolution natively (else: lax fallback)."""
    if len(lhs_shape) != 4 or len(rhs_shape) != 4:
        return False
    if not (_is_trivial(window_strides) and _is_trivial(lhs_dilation)):
        return False
    if feature_group_count != 1 or batch_group_count != 1:
        return False
    if dimension_numbers is None:  # lax default is NCHW/OIHW: not our layout.
        return False
    dn = lax.conv_dimension_numbers(lhs_shape, rhs_shape, dimension_numbers)
    return dn == _NHWC


def _explicit_padding(padding, lhs_shape, rhs_shape, rhs_dilation) -> tuple[tuple[int, int], ...]:
    """'SAME'/'VALID'/pairs -> ((top, bottom), (left, right)) for NHWC lhs and HWIO rhs."""
    if isinstance(padding, str):
        dilated_k = [(k - 1) * d + 1 for k, d in zip(rhs_shape[:2], rhs_dilation)]
        return tuple(tuple(p) for p in lax.padtype_to_pads(lhs_shape[1:3], dilated_k, (1, 1), padding))
    pads = tuple((int(lo), int(hi)) for lo, hi in padding)
    if len(pads) != 2:
        raise ValueError(f"expected 2 spatial padding pairs, got {padding!r}")
    return pads


def shifted_gemm_conv(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                                            dimension_numbers=None, feature_group_count=1, batch_group_count=1,
                                            precision=None, preferred_element_type=None, **kwargs):
    """Drop-in ``lax.conv_general_dilated`` with a GEMM-per-tap VJP (see module docstring).

    Args: as ``lax.conv_general_dilated``. Natively handled: lhs (N, H, W, Cin), rhs
    (KH, KW, Cin, Cout), out (N, Ho, Wo, Cout), stride 1, no lhs dilation, one group.
    Returns: (N, Ho, Wo, Cout) in ``preferred_element_type`` or the input dtype.
    """
    if kwargs.get("out_sharding") is not None or not is_supported(
            lhs.shape, rhs.shape, window_strides, lhs_dilation, dimension_numbers,
            feature_group_count, batch_group_count):
        return lax.conv_general_dilated(
                lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
                dimension_numbers=dimension_numbers, feature_group_count=feature_group_count,
                batch_group_count=batch_group_count, precision=precision,
                preferred_element_type=preferred_element_type, **kwargs)
    dilation = (1, 1) if rhs_dilation is None else tuple(int(d) for d in rhs_dilation)
    pads = _explicit_padding(padding, lhs.shape, rhs.shape, dilation)
    if isinstance(precision, list):  # nondiff args must be hashable
        precision = tuple(precision)
    out_dtype = None if preferred_element_type is None else jnp.dtype(preferred_element_type)
    return _conv_nhwc(lhs, rhs, pads, dilation, precision, out_dtype)


def _lax_conv(x, w, pads, dilation, precision, out_dtype):
    """The plain forward: NHWC x (N,H,W,Cin), HWIO w (KH,KW,Cin,Cout) -> (N,Ho,Wo,Cout)."""
    return lax.conv_general_dilated(
            x, w, (1, 1), pads, rhs_dilation=dilation, dimension_numbers=("NHWC", "HWIO", "NHWC"),
            precision=precision, preferred_element_type=out_dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def _conv_nhwc(x, w, pads, dilation, precision, out_dtype):
    return _lax_conv(x, w, pads, dilation, precision, out_dtype)


def _conv_nhwc_fwd(x, w, pads, dilation, precision, out_dtype):
    return _lax_conv(x, w, pads, dilation, precision, out_dtype), (x, w)


def _tap_windows(padded, kh, kw, dilation, out_hw):
    """Yield ((i, j), window) for every kernel tap; window = padded[:, i*dh : i*dh+Ho, j*dw : ...].

    padded: (N, Hp, Wp, C). Each window is (N, Ho, Wo, C) — the input pixels tap (i, j) meets.
    """
    (dh, dw), (ho, wo) = dilation, out_hw
    for i in range(kh):
        for j in range(kw):
            yield (i, j), lax.slice(padded, (0, i * dh, j * dw, 0),
                                                            (padded.shape[0], i * dh + ho, j * dw + wo, padded.shape[3]))


def _weight_grad(x, dy, w_shape, pads, dilation, precision):
    """dW (KH, KW, Cin, Cout) as one GEMM per tap: window(i,j)^T @ dy over (N, Ho, Wo), f32 acc."""
    kh, kw = w_shape[:2]
    xp = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    # Contract (N, Ho, Wo) of the window with the same axes of dy: (Cin, Cout) per tap.
    dims = (((0, 1, 2), (0, 1, 2)), ((), ()))
    taps = [lax.dot_general(win, dy, dims, precision=precision, preferred_element_type=jnp.float32)
                    for _, win in _tap_windows(xp, kh, kw, dilation, dy.shape[1:3])]
    return jnp.stack(taps).reshape(w_shape)


def _input_grad_lax(dy, w, x_shape, pads, dilation, precision):
    """dX via XLA's own transposed convolution (the VJP of the lax forward)."""
    x_aval = jax.ShapeDtypeStruct(x_shape, dy.dtype)
    # The convolution is linear in x: its transpose is the input gradient, no primal needed.
    conv_x = lambda x_: _lax_conv(x_, w, pads, dilation, precision, None)
    return jax.linear_transpose(conv_x, x_aval)(dy)[0]


def _input_grad_gemm(dy, w, x_shape, pads, dilation, precision):
    """dX (N, H, W, Cin) as one GEMM per tap over the "full"-padded dy, f32 accumulation.

    dX[n, h, w] = sum_{i,j} dy[n, h + p_top - i*dh, w + p_left - j*dw] @ W[i, j]^T, i.e. a stride-1
    correlation of dy (padded by the dilated kernel extent minus the forward padding) with the
    flipped kernel.
    """
    kh, kw = w.shape[:2]
    (dh, dw), (h, wd) = dilation, x_shape[1:3]
    ext_h, ext_w = (kh - 1) * dh, (kw - 1) * dw
    # Forward: out[o] = sum_i xpad[o + i*dh]; so x[h] gets dy[h + top - i*dh]. Pad dy so that every
    # index h + top - i*dh (for h in [0, H), i in [0, KH)) is valid: low = ext - top, high chosen so
    # the padded length is H + ext.
    lo_h, lo_w = ext_h - pads[0][0], ext_w - pads[1][0]
    hi_h = h + ext_h - dy.shape[1] - lo_h
    hi_w = wd + ext_w - dy.shape[2] - lo_w
    dyp = lax.pad(dy, jnp.array(0, dy.dtype), ((0, 0, 0), (lo_h, hi_h, 0), (lo_w, hi_w, 0), (0, 0, 0)))
    acc = None
    for (i, j), win in _tap_windows(dyp, kh, kw, dilation, (h, wd)):
        # The window at offset (i, j) of dyp serves tap (KH-1-i, KW-1-j) (the kernel is flipped).
        term = lax.dot_general(win, w[kh - 1 - i, kw - 1 - j], (((3,), (1,)), ((), ())),
                                                      precision=precision, preferred_element_type=jnp.float32)
        acc = term if acc is None else acc + term
    return acc


def _conv_nhwc_bwd(pads, dilation, precision, out_dtype, res, dy):
    x, w = res
    if out_dtype is not None:  # The cotangent arrives in the output dtype; compute in the input's.
        dy = dy.astype(x.dtype)
    dw = _weight_grad(x, dy, w.shape, pads, dilation, precision)
    input_grad = _input_grad_gemm if _INPUT_GRAD_IMPL == "gemm" else _input_grad_lax
    dx = input_grad(dy, w, x.shape, pads, dilation, precision)
    return dx.astype(x.dtype), dw.astype(w.dtype)


_conv_nhwc.defvjp(_conv_nhwc_fwd, _conv_nhwc_bwd)


def select_conv(impl: str) -> Callable[..., Any]:
    """Return a ``conv_general_dilated``-compatible callable for ``flax.linen.Conv``.

    impl: "xla" -> ``lax.conv_general_dilated``; "shifted_gemm" -> :func:`shifted_gemm_conv`;
    "auto" -> shifted_gemm on the CPU backend (where XLA's weight gradient is slow), lax elsewhere
    (cuDNN / TPU convolutions are already efficient).
    """
    if impl == "xla":
        return lax.conv_general_dilated
    if impl == "shifted_gemm":
        return shifted_gemm_conv
    if impl == "auto":
        return shifted_gemm_conv if jax.default_backend() == "cpu" else lax.conv_general_dilated
    raise ValueError(f"unknown conv_impl {impl!r}; expected one of {CONV_IMPLS}")
