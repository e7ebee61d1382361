"""twostep_jax.model.heads: the defining properties of the pooling heads (two-step attention,
GMP/GAP/GWRP global pooling, Atrous-AP attention)."""

import jax
import numpy as np
import pytest

from tests.fixtures import SMALL, forward
from twostep_jax import create_model
from twostep_jax.model.heads import gwrp_weights


@pytest.mark.parametrize("form", ["released_code", "paper_equations"])
def test_two_step_attention_weights_are_distributions(form, x_small):
    model = create_model("2apae", "test_tiny", attention_form=form, **SMALL)
    _, out = forward(model, x_small)
    np.testing.assert_allclose(np.asarray(out["freq_attention"]).sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(out["time_attention"]).sum(-1), 1.0, rtol=1e-5)
    assert np.all(np.asarray(out["freq_attention"]) >= 0)
    # clip probability = time-attention-weighted sum of the time-class branch (released form)
    if form == "released_code":
        assert np.all(np.asarray(out["freq_pooled"]) > 0) and np.all(np.asarray(out["freq_pooled"]) < 1)


def test_attention_forms_differ(x_small):
    _, a = forward(create_model("2apae", "test_tiny", **SMALL), x_small)
    _, b = forward(create_model("2apae", "test_tiny", attention_form="paper_equations", **SMALL), x_small)
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
