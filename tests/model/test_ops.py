"""twostep_jax.model.ops: the shifted-GEMM convolution equals lax.conv_general_dilated (values and
both gradients), and the int-key descending sort equals jnp.sort (values and gradients)."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from twostep_jax.model.ops import MIN_OUT_FEATURES, select_conv, shifted_gemm_conv, sort_descending

DN = ("NHWC", "HWIO", "NHWC")
# The tests' convolutions are narrow: force the GEMM weight gradient that wide ones take.
gemm_conv = functools.partial(shifted_gemm_conv, min_out_features=1)

# (batch, H, W, Cin, Cout, kernel, dilation, padding): 3x3 and 1x1 as in 2APAE, 5x5 with the
# Atrous baseline's dilations 1/2/4, and explicit / VALID / asymmetric paddings.
CASES = [
    (2, 7, 6, 3, 4, 3, 1, ((1, 1), (1, 1))),
    (1, 9, 8, 2, 3, 3, 1, "SAME"),
    (2, 6, 5, 4, 5, 1, 1, ((0, 0), (0, 0))),
    (2, 11, 9, 2, 3, 5, 1, ((2, 2), (2, 2))),
    (1, 12, 10, 2, 2, 5, 2, ((4, 4), (4, 4))),
    (2, 13, 10, 3, 2, 5, 4, "SAME"),
    (2, 8, 7, 3, 2, 3, 1, "VALID"),
    (1, 8, 7, 2, 3, 3, 2, ((2, 1), (0, 3))),
]


def _inputs(case, dtype):
    n, h, w, cin, cout, k, _, _ = case
    kx, kw, ky = jax.random.split(jax.random.PRNGKey(sum(case[:6])), 3)
    x = jax.random.normal(kx, (n, h, w, cin)).astype(dtype)
    kernel = (jax.random.normal(kw, (k, k, cin, cout)) / np.sqrt(k * k * cin)).astype(dtype)
    return x, kernel, ky


def _loss_and_grads(conv, case, x, kernel, probe):
    """A scalar loss with a non-trivial cotangent: sum(probe * conv(x, w)) in float32."""
    dilation, padding = case[6], case[7]

    def loss(x, kernel):
        y = conv(x, kernel, (1, 1), padding, rhs_dilation=(dilation, dilation), dimension_numbers=DN)
        return jnp.sum(probe * y.astype(jnp.float32))

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(x, kernel)


def _out_shape(case, x, kernel):
    return jax.eval_shape(lambda: lax.conv_general_dilated(
        x, kernel, (1, 1), case[7], rhs_dilation=(case[6],) * 2, dimension_numbers=DN)).shape


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"k{c[5]}d{c[6]}-{c[7] if isinstance(c[7], str) else 'pairs'}")
def test_float32_forward_and_gradients_match_lax(case):
    x, kernel, key = _inputs(case, jnp.float32)
    probe = jax.random.normal(key, _out_shape(case, x, kernel))
    ref = _loss_and_grads(lax.conv_general_dilated, case, x, kernel, probe)
    got = _loss_and_grads(gemm_conv, case, x, kernel, probe)
    y_ref = lax.conv_general_dilated(x, kernel, (1, 1), case[7], rhs_dilation=(case[6],) * 2, dimension_numbers=DN)
    y_got = gemm_conv(x, kernel, (1, 1), case[7], rhs_dilation=(case[6],) * 2, dimension_numbers=DN)
    np.testing.assert_array_equal(np.asarray(y_got), np.asarray(y_ref))  # the forward is lax's own
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-5, atol=1e-5)
    for g, r in zip(got[1], ref[1]):
        np.testing.assert_allclose(np.asarray(g), np.asarray(r), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", [CASES[0], CASES[5]], ids=["k3d1", "k5d4"])
def test_bfloat16_gradients_match_float32_reference(case):
    """bf16 in, gradients accumulated in f32 and returned in bf16: within bf16 rounding of the
    float32 gradients of the same (bf16-representable) inputs."""
    x, kernel, key = _inputs(case, jnp.bfloat16)
    probe = jax.random.normal(key, _out_shape(case, x, kernel))
    got = _loss_and_grads(gemm_conv, case, x, kernel, probe)
    ref = _loss_and_grads(lax.conv_general_dilated, case, x.astype(jnp.float32),
                          kernel.astype(jnp.float32), probe)
    assert got[1][0].dtype == jnp.bfloat16 and got[1][1].dtype == jnp.bfloat16
    for g, r in zip(got[1], ref[1]):
        scale = float(jnp.max(jnp.abs(r)))
        np.testing.assert_allclose(np.asarray(g, np.float32), np.asarray(r), rtol=2e-2, atol=2e-2 * scale)


def test_preferred_element_type_float32_from_bfloat16():
    case = CASES[0]
    x, kernel, _ = _inputs(case, jnp.bfloat16)
    conv = lambda c: lambda x, w: c(x, w, (1, 1), case[7], dimension_numbers=DN,  # noqa: E731
                                    preferred_element_type=jnp.float32)
    y = conv(gemm_conv)(x, kernel)
    assert y.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(y), np.asarray(conv(lax.conv_general_dilated)(x, kernel)))
    g = jax.grad(lambda x, w: jnp.sum(conv(gemm_conv)(x, w) ** 2), argnums=(0, 1))(x, kernel)
    r = jax.grad(lambda x, w: jnp.sum(conv(lax.conv_general_dilated)(x, w) ** 2), argnums=(0, 1))(x, kernel)
    for a, b in zip(g, r):
        assert a.dtype == jnp.bfloat16
        np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b, np.float32), rtol=2e-2,
                                   atol=2e-2 * float(jnp.max(jnp.abs(b.astype(jnp.float32)))))


def _flax_conv(conv, kernel_size=3, dilation=1):
    pad = dilation * (kernel_size - 1) // 2
    return nn.Conv(4, (kernel_size, kernel_size), padding=((pad, pad), (pad, pad)),
                   kernel_dilation=(dilation, dilation), use_bias=False, conv_general_dilated=conv)


@pytest.mark.parametrize("kernel_size,dilation", [(3, 1), (5, 2)])
def test_as_flax_conv_under_vmap_matches_lax(kernel_size, dilation):
    """Per-example parameter gradients (vmap of grad) through flax's nn.Conv."""
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 2, 9, 8, 3))  # 3 independent mini-batches
    params = _flax_conv(lax.conv_general_dilated, kernel_size, dilation).init(jax.random.PRNGKey(1), x[0])

    def per_batch_grads(conv_fn):
        conv = _flax_conv(conv_fn, kernel_size, dilation)
        grad = jax.grad(lambda p, xb: jnp.sum(jnp.tanh(conv.apply(p, xb))))
        return jax.jit(jax.vmap(grad, in_axes=(None, 0)))(params, x)

    got, ref = per_batch_grads(gemm_conv), per_batch_grads(lax.conv_general_dilated)
    np.testing.assert_allclose(got["params"]["kernel"], ref["params"]["kernel"], rtol=1e-5, atol=1e-5)


def test_under_pmap_with_psum_matches_lax():
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 2, 7, 6, 3))  # [devices, batch, H, W, C]
    kernel = jax.random.normal(jax.random.PRNGKey(1), (3, 3, 3, 4)) * 0.2

    def grads(conv):
        def f(w, xb):
            loss = lambda w: jnp.sum(jnp.sin(conv(xb, w, (1, 1), "SAME", dimension_numbers=DN)))  # noqa: E731
            return jax.lax.psum(jax.grad(loss)(w), "d")
        return jax.pmap(f, axis_name="d", in_axes=(None, 0), devices=jax.local_devices()[:2])(kernel, x)

    np.testing.assert_allclose(grads(gemm_conv), grads(lax.conv_general_dilated), rtol=1e-5, atol=1e-5)


def _uses_custom_vjp(conv, x, kernel, **kwargs) -> bool:
    jaxpr = jax.make_jaxpr(lambda x, w: conv(x, w, **kwargs))(x, kernel)
    return "custom_vjp_call" in str(jaxpr)


def test_gemm_path_only_for_wide_outputs():
    x = jnp.ones((1, 5, 5, 2))
    args = dict(window_strides=(1, 1), padding="SAME", dimension_numbers=DN)
    assert _uses_custom_vjp(shifted_gemm_conv, x, jnp.ones((3, 3, 2, MIN_OUT_FEATURES)), **args)
    assert not _uses_custom_vjp(shifted_gemm_conv, x, jnp.ones((3, 3, 2, MIN_OUT_FEATURES - 1)), **args)
    assert _uses_custom_vjp(gemm_conv, x, jnp.ones((3, 3, 2, 1)), **args)


@pytest.mark.parametrize("kwargs", [dict(window_strides=(2, 2)), dict(feature_group_count=3),
                                    dict(lhs_dilation=(2, 1))], ids=["stride2", "groups", "lhs_dilation"])
def test_unsupported_convolutions_fall_back_to_lax(kwargs):
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 8, 3))
    groups = kwargs.get("feature_group_count", 1)
    kernel = jax.random.normal(jax.random.PRNGKey(1), (3, 3, 3 // groups, 6))
    args = dict(window_strides=(1, 1), padding=((1, 1), (1, 1)), dimension_numbers=DN) | kwargs

    def grads(conv):
        return jax.grad(lambda x, w: jnp.sum(conv(x, w, **args) ** 2), argnums=(0, 1))(x, kernel)

    assert not _uses_custom_vjp(gemm_conv, x, kernel, **args)
    for g, r in zip(grads(gemm_conv), grads(lax.conv_general_dilated)):
        np.testing.assert_array_equal(np.asarray(g), np.asarray(r))


def test_select_conv(monkeypatch):
    assert select_conv("xla") is lax.conv_general_dilated
    assert select_conv("shifted_gemm") is shifted_gemm_conv
    # The test session runs with Eigen convolutions (conftest), like the entry points.
    assert select_conv("auto") is lax.conv_general_dilated
    # With XLA:CPU's YNNPACK convolutions, "auto" takes the GEMM-per-tap weight gradient on CPU.
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
    expected = shifted_gemm_conv if jax.default_backend() == "cpu" else lax.conv_general_dilated
    assert select_conv("auto") is expected
    with pytest.raises(ValueError, match="conv_impl"):
        select_conv("cudnn")


# ------------------------------------------------------------------ sort_descending (GWRP's sort)


def test_sort_descending_equals_jnp_sort_values_and_gradients():
    # Negative, positive, ±0 and infinities: the int32 keys must order them all like floats.
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 4, 257)) * 10
    x = x.at[0, 0, :4].set(jnp.array([jnp.inf, -jnp.inf, 0.0, -0.0]))
    np.testing.assert_array_equal(np.asarray(sort_descending(x)), np.asarray(-jnp.sort(-x, axis=-1)))
    # Distinct values: the same gradient as differentiating jnp.sort, bit for bit.
    x = jax.random.uniform(jax.random.PRNGKey(1), (2, 3, 500))
    w = jax.random.normal(jax.random.PRNGKey(2), (500,))
    ours = jax.grad(lambda v: jnp.sum(sort_descending(v) @ w))(x)
    plain = jax.grad(lambda v: jnp.sum(-jnp.sort(-v, axis=-1) @ w))(x)
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(plain))


def test_sort_descending_gradient_shares_tied_positions():
    x = jnp.array([[0.5, 1.0, 0.2, 1.0, 1.0, 0.0, 0.0]])  # descending: 1 1 1 .5 .2 0 0
    grad = jax.grad(lambda v: jnp.sum(sort_descending(v) @ jnp.arange(7.0)))(x)
    # The three 1.0s share positions 0-2 (mean 1), the two 0.0s positions 5-6 (mean 5.5).
    np.testing.assert_array_equal(np.asarray(grad), [[3.0, 1.0, 4.0, 1.0, 1.0, 5.5, 5.5]])
