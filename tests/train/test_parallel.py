"""twostep_jax.train.parallel: on 8 fake devices, the pmap and the sharded (jit over a Mesh) forms
of the train step both compute the single-device step on the same global batch; their eval steps
and `predict` give the single-device outputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.fixtures import SMALL
from twostep_jax import create_model
from twostep_jax.data.dataset import ClipArrays
from twostep_jax.data.input_pipeline import NormStats
from twostep_jax.train.parallel import parallel_form
from twostep_jax.train.predict import predict
from twostep_jax.train.step import create_train_state, make_train_step

LR = 1e-4  # small: Adam's sign-like first step would amplify float noise on zero gradients


def _host_batch(n=16, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, SMALL["frames"], SMALL["mels"])).astype(np.float32)
    t = (rng.random((n, SMALL["classes"])) < 0.3).astype(np.float32)
    return x, t


def _max_diff(a, b):
    return max(float(jnp.max(jnp.abs(np.asarray(x) - np.asarray(y))))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.fixture(scope="module")
def single_step():
    """Two steps of the single-device step on the global batch (the reference)."""
    x, t = _host_batch()
    model = create_model("2apae", "test_tiny", **SMALL)
    step = make_train_step(model, alpha=0.001, axis_name=None)
    state = create_train_state(model, jax.random.PRNGKey(0), LR)
    init = jax.device_get(state.batch_stats)  # the step donates (deletes) its input state
    metrics = []
    for i in range(2):
        state, m = step(state, {"logmel": x, "target": t}, jax.random.PRNGKey(3))
        metrics.append(jax.device_get(m))
    return init, state, metrics


@pytest.mark.parametrize("name", ["pmap", "sharded"])
def test_form_on_8_devices_equals_single_device_step(name, single_step):
    init, state1, metrics1 = single_step
    assert jax.device_count() == 8
    form = parallel_form(name)
    x, t = _host_batch()
    model = create_model("2apae", "test_tiny", axis_name=form.axis_name, **SMALL)
    step = form.make_train_step(model, alpha=0.001)
    state = form.put_state(create_train_state(model, jax.random.PRNGKey(0), LR))
    host = {"logmel": x.reshape(8, 2, *x.shape[1:]), "target": t.reshape(8, 2, -1)}
    for i in range(2):
        batch = form.put_batch(host)
        if name == "sharded":  # one global array split over the mesh, not a stacked [8, 2, ...]
            assert batch["logmel"].shape == x.shape and len(batch["logmel"].addressable_shards) == 8
        state, m = step(state, batch, jax.random.PRNGKey(3))
        for key in ("loss", "bce", "reconstruction_loss", "grad_norm"):
            np.testing.assert_allclose(float(m[key]), float(metrics1[i][key]), rtol=1e-5, atol=1e-6)
    assert _max_diff(state.params, state1.params) < 1e-5
    assert _max_diff(state.batch_stats, state1.batch_stats) < 1e-5
    assert int(state.step) == 2
    # Non-vacuous: the BatchNorm statistics moved, and per-device (8 x 2 clips) statistics would
    # differ from the global ones by far more than the tolerance.
    assert _max_diff(state1.batch_stats, init) > 1e-3
    if name == "sharded":
        assert all(leaf.sharding.is_fully_replicated for leaf in jax.tree.leaves(state.params))


def test_per_device_batch_statistics_would_fail_the_comparison(single_step):
    """The check above can fail: pmap with BatchNorm not synced (axis_name unset in the model,
    pmean only on gradients) gives per-device statistics, visibly different."""
    _, state1, _ = single_step
    import functools

    from twostep_jax.train.step import train_step

    x, t = _host_batch()
    model = create_model("2apae", "test_tiny", **SMALL)
    step = jax.pmap(functools.partial(train_step, model=model, alpha=0.001, axis_name="batch"),
                    axis_name="batch", in_axes=(None, 0, None), out_axes=(None, None))
    state = parallel_form("pmap").put_state(create_train_state(model, jax.random.PRNGKey(0), LR))
    host = {"logmel": x.reshape(8, 2, *x.shape[1:]), "target": t.reshape(8, 2, -1)}
    for _ in range(2):
        state, _ = step(state, host, jax.random.PRNGKey(3))
    assert _max_diff(state.batch_stats, state1.batch_stats) > 1e-4


@pytest.mark.parametrize("name", ["pmap", "sharded"])
def test_predict_in_both_forms_equals_single_device_forward(name):
    model = create_model("gap", "test_tiny", **SMALL)  # any model: the forms only move the batch
    variables = create_train_state(model, jax.random.PRNGKey(0), LR)
    variables = {"params": variables.params, "batch_stats": variables.batch_stats}
    x, t = _host_batch(n=21)  # not a multiple of 8: the last batch is padded
    clips = ClipArrays(logmel=x, target=t, mixture_name=np.array([str(i) for i in range(21)]),
                       fold=np.ones(21, np.int32), events=[[] for _ in range(21)],
                       scene_label=np.array(["s"] * 21))
    stats = NormStats(mean=np.zeros(SMALL["mels"], np.float32), std=np.ones(SMALL["mels"], np.float32))
    form = parallel_form(name)
    out = predict(form.make_eval_step(model), variables, clips, stats, 16, keep_frames=True, form=form)
    ref = jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, x)
    np.testing.assert_allclose(out["clip_probs"], np.asarray(ref["clip_probs"]), atol=1e-5)
    np.testing.assert_allclose(out["frame_probs"], np.asarray(ref["frame_probs"]), atol=1e-5)


def test_unknown_form_and_mismatched_model_are_errors():
    with pytest.raises(ValueError, match="unknown parallel form"):
        parallel_form("pjit")
    with pytest.raises(ValueError, match="axis_name"):
        parallel_form("sharded").make_train_step(
            create_model("gap", "test_tiny", axis_name="batch", **SMALL), alpha=0.0)
