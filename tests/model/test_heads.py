"""twostep_jax.model.heads: the defining properties of the pooling heads (two-step attention,
GMP/GAP/GWRP global pooling, Atrous-AP attention)."""

import jax
import numpy as np
import pytest

from tests.fixtures import SMALL, forward
from twostep_jax import create_model
from twostep_jax.model.heads import gwrp_weights


@pytest.mark.parametrize("form", ["released_code", "paper_equations", "content"])
def test_two_step_attention_weights_are_distributions(form, x_small):
    model = create_model("2apae", "test_tiny", attention_form=form, **SMALL)
    _, out = forward(model, x_small)
    np.testing.assert_allclose(np.asarray(out["freq_attention"]).sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(out["time_attention"]).sum(-1), 1.0, rtol=1e-5)
    assert np.all(np.asarray(out["freq_attention"]) >= 0)
    # clip probability = time-attention-weighted sum of the time-class branch (released form)
    if form == "released_code":
        assert np.all(np.asarray(out["freq_pooled"]) > 0) and np.all(np.asarray(out["freq_pooled"]) < 1)


def test_content_time_attention_shapes_and_clip_pooling(x_small):
    model = create_model("2apae", "test_tiny", attention_form="content", **SMALL)
    variables, out = forward(model, x_small)
    b, t, k = x_small.shape[0], SMALL["frames"], SMALL["classes"]
    # Its weights are [K, K] per frame (shared over time), not [T, T] over positions.
    dense = variables["params"]["classifier"]["time_attention"]
    assert dense["class_dense"]["kernel"].shape == (k, k) == dense["attention_dense"]["kernel"].shape
    assert out["time_attention"].shape == (b, k, t)
    outputs = {n: np.asarray(v) for n, v in out["frame_outputs"].items()}
    assert sorted(outputs) == ["frame_class", "freq_pooled", "time_attention"]
    assert all(v.shape == (b, t, k) and v.min() >= 0 and v.max() <= 1 for v in outputs.values())
    # clip = sum over time of the frame class probabilities weighted by the time attention
    pooled = np.sum(outputs["frame_class"] * np.swapaxes(np.asarray(out["time_attention"]), 1, 2), axis=1)
    np.testing.assert_allclose(np.asarray(out["clip_probs"]), pooled, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("prior", [3 / 41, 0.5, 0.2])
def test_content_time_attention_starts_at_the_class_prior(prior):
    # Evidence-free input (first-step output 0.5 = logit 0): every frame and clip output starts at
    # class_prior, whatever the attention; with evidence, the frame output is sigmoid(evidence +
    # logit(prior)) (identity kernel at init).
    from twostep_jax.model.heads import ContentTimeAttention, logit
    head = ContentTimeAttention(classes=4, class_bias=logit(prior))
    z = np.full((2, 4, 7), 0.5, np.float32)
    variables = head.init(jax.random.PRNGKey(0), z)
    clip, _, frames = head.apply(variables, z)
    np.testing.assert_allclose(np.asarray(clip), prior, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(frames), prior, rtol=1e-5)
    z = np.random.default_rng(0).uniform(0.05, 0.95, (2, 4, 7)).astype(np.float32)
    _, _, frames = head.apply(variables, z)
    evidence = np.log(z) - np.log1p(-z)
    expected = 1.0 / (1.0 + np.exp(-(np.swapaxes(evidence, 1, 2) + logit(prior))))
    np.testing.assert_allclose(np.asarray(frames), expected, rtol=1e-4)


# (model, attention form): every head, and the layer whose output is its class probability.
_CLASS_OUTPUTS = [("gap", None), ("gmp", None), ("gwrp", None), ("attention", None), ("atrous_ap", None),
                  ("2apae", "released_code"), ("2apae", "paper_equations"), ("2apae", "content")]


def _class_output_bias(variables, name, form):
    head = variables["params"]["classifier"]
    layer = head["time_attention"]["class_dense"] if name == "2apae" else head["class_conv"]
    return np.asarray(layer["bias"])


def _is_released_bias(bias):
    # The time step's class Dense as released: PyTorch's random U(+-1/sqrt(fan_in)) bias.
    return np.ptp(bias) > 0 and np.all(np.abs(bias) <= 1.0 / np.sqrt(SMALL["frames"]))


@pytest.mark.parametrize("name,form", _CLASS_OUTPUTS)
def test_cpu_presets_start_the_class_outputs_at_the_prior(name, form, x_small):
    from twostep_jax.model.heads import logit
    forms = {"attention_form": form} if form else {}
    variables, out = forward(create_model(name, "test_tiny", **forms, **SMALL), x_small)
    bias = _class_output_bias(variables, name, form)
    if name == "atrous_ap":
        # Log-softmax class branch: a shared bias would cancel; its clip output already starts
        # near sigmoid(-log K) = 1 / (K + 1).
        np.testing.assert_array_equal(bias, 0.0)
        assert float(np.mean(np.asarray(out["clip_probs"]))) < 0.25
    elif form in ("released_code", "paper_equations"):
        # Released / paper time steps keep the released init (the prior was worse on validation).
        assert _is_released_bias(bias)
    else:
        np.testing.assert_allclose(bias, logit(3 / 41), rtol=1e-6)
        # Means of sigmoids of prior-centred logits: the clip outputs start far below 0.5.
        assert float(np.mean(np.asarray(out["clip_probs"]))) < 0.25


@pytest.mark.parametrize("name,form", _CLASS_OUTPUTS)
def test_class_prior_zero_keeps_the_released_initial_biases(name, form, x_small):
    # The `paper` preset: class convs' biases at zero (Kong's init_layer), the time step's class
    # Dense with PyTorch's random bias, the content form's at zero.
    from twostep_jax.config import model_config
    forms = {"attention_form": form} if form else {}
    assert model_config(name, "paper", **forms).class_prior == 0.0
    variables, out = forward(create_model(name, "test_tiny", class_prior=0.0, **forms, **SMALL), x_small)
    bias = _class_output_bias(variables, name, form)
    if form in ("released_code", "paper_equations"):
        assert _is_released_bias(bias)
    else:
        np.testing.assert_array_equal(bias, 0.0)
    if name == "gap":
        # Zero-bias sigmoid map averaged: the clip outputs start near 0.5.
        assert float(np.mean(np.asarray(out["clip_probs"]))) > 0.3


def test_class_prior_is_checked_and_does_not_change_the_checkpoint_structure():
    from twostep_jax.config import model_config
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match="class_prior"):
            model_config("2apae", "test_tiny", attention_form="content", class_prior=bad)
    a = model_config("gmp", "test_tiny", class_prior=0.0)
    b = model_config("gmp", "test_tiny")
    assert a.structure() == b.structure() and a != b


def test_content_time_attention_is_translation_equivariant():
    # An event-like blob in silence, and the same blob 10 frames later: away from the clip edges
    # (where the convolutions' zero padding differs) the frame outputs move with it, and the time
    # attention keeps its shape (softmax over the whole clip: equal up to one normaliser).
    frames, mels, shift, margin = 96, 12, 10, 24
    x = np.zeros((1, frames, mels), np.float32)
    x[0, 36:46, 3:8] = 2.0 + np.random.default_rng(0).normal(size=(10, 5))
    x_shifted = np.roll(x, shift, axis=1)
    model = create_model("2apae", "test_tiny", attention_form="content", frames=frames, mels=mels, classes=5)
    variables, out = forward(model, x)
    shifted = model.apply(variables, x_shifted, train=False)
    inner = slice(margin, frames - shift - margin)
    moved = slice(margin + shift, frames - margin)
    for name in ("frame_class", "freq_pooled"):
        np.testing.assert_allclose(np.asarray(shifted["frame_outputs"][name])[0, moved],
                                   np.asarray(out["frame_outputs"][name])[0, inner], rtol=1e-4, atol=1e-5)
    a = np.asarray(out["time_attention"])[0, :, inner]
    a_shifted = np.asarray(shifted["time_attention"])[0, :, moved]
    np.testing.assert_allclose(a_shifted / a_shifted.sum(-1, keepdims=True), a / a.sum(-1, keepdims=True),
                               rtol=1e-4)
    # The released form's time step is a Dense over absolute positions: it is not equivariant.
    released = create_model("2apae", "test_tiny", frames=frames, mels=mels, classes=5)
    variables, out = forward(released, x)
    shifted = released.apply(variables, x_shifted, train=False)
    r, r_shifted = np.asarray(out["time_attention"])[0, :, inner], np.asarray(shifted["time_attention"])[0, :, moved]
    assert not np.allclose(r_shifted / r_shifted.sum(-1, keepdims=True), r / r.sum(-1, keepdims=True), rtol=1e-2)


def test_every_head_offers_frame_outputs_in_unit_range(x_small):
    for name in ("gap", "gmp", "atrous_ap", "attention", "2apae"):
        _, out = forward(create_model(name, "test_tiny", **SMALL), x_small)
        assert out["frame_outputs"], name
        for key, value in out["frame_outputs"].items():
            value = np.asarray(value)
            assert value.shape == (x_small.shape[0], SMALL["frames"], SMALL["classes"]), (name, key)
            assert value.min() >= 0.0 and value.max() <= 1.0 + 1e-6, (name, key)


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
