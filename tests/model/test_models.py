"""twostep_jax.model.models: shapes, parameter counts, dtypes and errors of every model
(the heads' and layers' own properties are in test_heads.py and test_layers.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.fixtures import SMALL, forward
from twostep_jax import MODEL_NAMES, abstract_variables, count_params, create_model


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
    _, out = forward(model, x, train=True)
    assert out["clip_probs"].shape == (2, 41)
    assert out["reconstruction"].shape == (2, 311, 64)
    assert np.all(np.isfinite(np.asarray(out["clip_probs"])))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_tiny_forward_probabilities(name, x_small):
    model = create_model(name, "test_tiny", **SMALL)
    _, out = forward(model, x_small, train=True)
    probs = np.asarray(out["clip_probs"])
    frames = np.asarray(out["frame_probs"])
    assert probs.shape == (3, 5) and frames.shape == (3, 24, 5)
    assert probs.dtype == np.float32
    assert np.all((probs >= 0) & (probs <= 1)) and np.all((frames >= 0) & (frames <= 1))


def test_bfloat16_outputs_finite_float32_for_extreme_inputs():
    model = create_model("2apae", "test_tiny", dtype="bfloat16", **SMALL)
    x = jnp.concatenate([jnp.full((1, 24, 12), 1e4), jnp.full((1, 24, 12), -1e4),
                         1e4 * jax.random.normal(jax.random.PRNGKey(0), (1, 24, 12))])
    variables, out = forward(model, x, train=True)
    for leaf in jax.tree.leaves(variables):
        assert leaf.dtype == jnp.float32
    probs = np.asarray(out["clip_probs"])
    assert probs.dtype == np.float32
    assert np.all(np.isfinite(probs)) and np.all((probs >= 0) & (probs <= 1))
    assert np.all(np.isfinite(np.asarray(out["reconstruction"])))


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
