"""Shapes, parameter counts and the defining properties of every model and head."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from twostep_jax import MODEL_NAMES, abstract_variables, count_params, create_model
from twostep_jax.heads import gwrp_weights

SMALL = dict(frames=24, mels=12, classes=5)  # tiny shapes for real forwards


def _forward(model, x, seed=0, train=False):
    variables = model.init(jax.random.PRNGKey(seed), x, train=False)
    if train:
        out, _ = model.apply(variables, x, train=True, mutable=["batch_stats"])
    else:
        out = model.apply(variables, x, train=False)
    return variables, out


@pytest.fixture(scope="module")
def x_small():
    return jax.random.normal(jax.random.PRNGKey(42), (3, SMALL["frames"], SMALL["mels"]))


def test_paper_2apae_has_released_parameter_count():
    model = create_model("2apae", "paper")
    assert model.input_shape == (311, 64)
    variables = abstract_variables(model)
    assert count_params(variables["params"]) == 1_967_366
    # Per-part counts of the released code (ref §1.7).
    p = variables["params"]
    encoder = count_params(p["encoder"]) + count_params(p["classifier"]["class_conv"])
    assert encoder == 1_183_177
    assert count_params(p["decoder"]) == 581_805
    attention = count_params(p["classifier"]["freq_attention"]) + count_params(p["classifier"]["time_attention"])
    assert attention == 202_384


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_paper_preset_output_shapes(name):
    model = create_model(name, "paper")
    x = jax.ShapeDtypeStruct((2, 311, 64), jnp.float32)
    variables = abstract_variables(model)
    out = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, x)
    assert out["clip_probs"].shape == (2, 41)
    assert out["frame_probs"].shape == (2, 311, 41)
    assert out["segmentation"].shape == (2, 41, 311, 64)
    if name == "2apae":
        assert out["freq_attention"].shape == (2, 41, 311, 64)
        assert out["freq_pooled"].shape == (2, 41, 311)
        assert out["time_attention"].shape == (2, 41, 311)
        assert out["reconstruction"].shape == (2, 311, 64)
    else:
        assert "reconstruction" not in out
    for leaf in jax.tree.leaves(variables):
        assert leaf.dtype == jnp.float32


def test_test_tiny_2apae_real_forward_on_data_shape():
    model = create_model("2apae", "test_tiny")
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 311, 64))
    _, out = _forward(model, x, train=True)
    assert out["clip_probs"].shape == (2, 41)
    assert out["reconstruction"].shape == (2, 311, 64)
    assert np.all(np.isfinite(np.asarray(out["clip_probs"])))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_tiny_forward_probabilities(name, x_small):
    model = create_model(name, "test_tiny", **SMALL)
    _, out = _forward(model, x_small, train=True)
    probs = np.asarray(out["clip_probs"])
    frames = np.asarray(out["frame_probs"])
    assert probs.shape == (3, 5) and frames.shape == (3, 24, 5)
    assert probs.dtype == np.float32
    assert np.all((probs >= 0) & (probs <= 1)) and np.all((frames >= 0) & (frames <= 1))


@pytest.mark.parametrize("form", ["released_code", "paper_equations"])
def test_two_step_attention_weights_are_distributions(form, x_small):
    model = create_model("2apae", "test_tiny", attention_form=form, **SMALL)
    _, out = _forward(model, x_small)
    np.testing.assert_allclose(np.asarray(out["freq_attention"]).sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(out["time_attention"]).sum(-1), 1.0, rtol=1e-5)
    assert np.all(np.asarray(out["freq_attention"]) >= 0)
    # clip probability = time-attention-weighted sum of the time-class branch (released form)
    if form == "released_code":
        assert np.all(np.asarray(out["freq_pooled"]) > 0) and np.all(np.asarray(out["freq_pooled"]) < 1)


def test_attention_forms_differ(x_small):
    _, a = _forward(create_model("2apae", "test_tiny", **SMALL), x_small)
    _, b = _forward(create_model("2apae", "test_tiny", attention_form="paper_equations", **SMALL), x_small)
    assert not np.allclose(np.asarray(a["clip_probs"]), np.asarray(b["clip_probs"]))


def test_gwrp_limits_equal_gmp_and_gap(x_small):
    gmp = create_model("gmp", "test_tiny", **SMALL)
    variables = gmp.init(jax.random.PRNGKey(3), x_small, train=False)
    out = {}
    for name, kw in [("gmp", {}), ("gap", {}), ("gwrp", {"gwrp_r": 0.0}), ("gwrp1", {"gwrp_r": 1.0}),
                     ("gwrp_paper", {})]:
        model = create_model(name.rstrip("1").replace("_paper", ""), "test_tiny", **SMALL, **kw)
        out[name] = np.asarray(model.apply(variables, x_small, train=False)["clip_probs"])
    np.testing.assert_allclose(out["gwrp"], out["gmp"], rtol=1e-6)
    np.testing.assert_allclose(out["gwrp1"], out["gap"], rtol=1e-5)
    # r = 0.9998 lies between the mean and the max.
    assert np.all(out["gwrp_paper"] <= out["gmp"] + 1e-6) and np.all(out["gwrp_paper"] >= out["gap"] - 1e-6)
    w = gwrp_weights(19904, 0.9998)
    assert w.shape == (19904,) and abs(w.sum() - 1) < 1e-5 and np.all(np.diff(w) < 0)


def test_sort_descending_equals_jnp_sort_values_and_gradients():
    from twostep_jax.heads import sort_descending

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
    from twostep_jax.heads import sort_descending

    x = jnp.array([[0.5, 1.0, 0.2, 1.0, 1.0, 0.0, 0.0]])  # descending: 1 1 1 .5 .2 0 0
    grad = jax.grad(lambda v: jnp.sum(sort_descending(v) @ jnp.arange(7.0)))(x)
    # The three 1.0s share positions 0-2 (mean 1), the two 0.0s positions 5-6 (mean 5.5).
    np.testing.assert_array_equal(np.asarray(grad), [[3.0, 1.0, 4.0, 1.0, 1.0, 5.5, 5.5]])


def test_atrous_ap_outputs_at_most_half(x_small):
    model = create_model("atrous_ap", "test_tiny", **SMALL)
    variables = model.init(jax.random.PRNGKey(0), x_small, train=False)
    # Perturb the zero-initialised attention kernel so attention is not uniform.
    variables = jax.tree_util.tree_map_with_path(
        lambda path, v: v + 0.5 if "attention_conv" in jax.tree_util.keystr(path) else v, variables)
    out = model.apply(variables, x_small * 10, train=False)
    probs = np.asarray(out["clip_probs"])
    assert np.all(probs <= 0.5) and np.all(probs > 0)
    att = np.asarray(out["tf_attention"])
    np.testing.assert_allclose(att.sum(axis=(2, 3)), 1.0, rtol=1e-5)


def test_atrous_backbone_is_dilated_5x5():
    params = abstract_variables(create_model("atrous_ap", "paper"))["params"]["encoder"]
    kernels = [v["ConvBNReLU_0"]["Conv_0"]["kernel"].shape for v in params.values()]
    assert kernels == [(5, 5, 1, 64), (5, 5, 64, 128), (5, 5, 128, 256)]


def test_bfloat16_outputs_finite_float32_for_extreme_inputs():
    model = create_model("2apae", "test_tiny", dtype="bfloat16", **SMALL)
    x = jnp.concatenate([jnp.full((1, 24, 12), 1e4), jnp.full((1, 24, 12), -1e4),
                         1e4 * jax.random.normal(jax.random.PRNGKey(0), (1, 24, 12))])
    variables, out = _forward(model, x, train=True)
    for leaf in jax.tree.leaves(variables):
        assert leaf.dtype == jnp.float32
    probs = np.asarray(out["clip_probs"])
    assert probs.dtype == np.float32
    assert np.all(np.isfinite(probs)) and np.all((probs >= 0) & (probs <= 1))
    assert np.all(np.isfinite(np.asarray(out["reconstruction"])))


def test_linear_decoder_output_can_be_negative(x_small):
    _, relu_out = _forward(create_model("2apae", "test_tiny", **SMALL), x_small, train=True)
    _, lin_out = _forward(create_model("2apae", "test_tiny", decoder_output="linear", **SMALL), x_small,
                          train=True)
    assert np.all(np.asarray(relu_out["reconstruction"]) >= 0)
    assert np.any(np.asarray(lin_out["reconstruction"]) < 0)


def test_wrong_input_shape_is_a_clear_error():
    model = create_model("2apae", "test_tiny")
    variables = abstract_variables(model)
    with pytest.raises(ValueError, match=r"time=311, mel=64.*got shape \(2, 300, 64\)"):
        model.apply(variables, jnp.zeros((2, 300, 64)), train=False)
    with pytest.raises(ValueError, match="got shape"):
        model.apply(variables, jnp.zeros((311, 64)), train=False)


def test_unknown_names_and_overrides_are_errors():
    with pytest.raises(ValueError, match="unknown model"):
        create_model("resnet")
    with pytest.raises(ValueError, match="unknown preset"):
        create_model("2apae", "huge")
    with pytest.raises(ValueError, match="unknown model override"):
        create_model("2apae", "paper", widths=3)
    with pytest.raises(ValueError, match="attention_form"):
        create_model("2apae", "paper", attention_form="other")
