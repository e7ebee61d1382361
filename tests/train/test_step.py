"""twostep_jax.train.step: the pmapped train step on 8 devices is the single-device step on the
same global batch."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.fixtures import SMALL
from twostep_jax import create_model
from twostep_jax.train.step import (create_train_state, learning_rate_of, make_eval_step, make_train_step,
                                    with_learning_rate)


def _batch(n=16, seed=1):
    k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
    x = jax.random.normal(k1, (n, SMALL["frames"], SMALL["mels"]))
    t = (jax.random.uniform(k2, (n, SMALL["classes"])) < 0.3).astype(jnp.float32)
    return x, t


def _tree_max_abs_diff(a, b):
    return max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.parametrize("name", ["2apae", "gwrp"])
def test_pmap_8_devices_equals_single_device_step(name):
    assert jax.local_device_count() == 8
    # Adam's first step is ~lr * sign(grad); on parameters whose exact gradient is 0 (the 1x1 conv
    # right before a 1-channel BatchNorm is scale-invariant) float noise flips that sign, so the
    # comparison uses a small learning rate to keep such noise below the tolerance.
    lr = 1e-4
    x, t = _batch()
    rng = jax.random.PRNGKey(3)
    single = create_model(name, "test_tiny", **SMALL)
    state1, m1 = make_train_step(single, alpha=0.001, axis_name=None)(
        create_train_state(single, jax.random.PRNGKey(0), lr), {"logmel": x, "target": t}, rng)
    multi = create_model(name, "test_tiny", axis_name="batch", **SMALL)
    state8, m8 = make_train_step(multi, alpha=0.001)(
        create_train_state(multi, jax.random.PRNGKey(0), lr),
        {"logmel": x.reshape(8, 2, *x.shape[1:]), "target": t.reshape(8, 2, -1)}, rng)
    for key in ("loss", "bce", "reconstruction_loss", "grad_norm"):
        np.testing.assert_allclose(float(m8[key]), float(m1[key]), rtol=1e-5, atol=1e-6)
    assert _tree_max_abs_diff(state8.params, state1.params) < 1e-5
    assert _tree_max_abs_diff(state8.batch_stats, state1.batch_stats) < 1e-5
    # The running statistics really moved (the comparison is not vacuous).
    init = create_train_state(single, jax.random.PRNGKey(0), lr)
    assert _tree_max_abs_diff(state1.batch_stats, init.batch_stats) > 1e-3
    assert int(state8.step) == 1


def test_bfloat16_training_stays_finite_with_float32_state():
    model = create_model("2apae", "test_tiny", axis_name="batch", dtype="bfloat16", **SMALL)
    step = make_train_step(model, alpha=0.001)
    state = create_train_state(model, jax.random.PRNGKey(0), 1e-3)
    x, t = _batch()
    batch = {"logmel": x.reshape(8, 2, *x.shape[1:]) * 100.0, "target": t.reshape(8, 2, -1)}
    for i in range(3):
        state, metrics = step(state, batch, jax.random.PRNGKey(i))
        assert np.isfinite(float(metrics["loss"]))
    for leaf in jax.tree.leaves((state.params, state.batch_stats, state.opt_state)):
        assert leaf.dtype in (jnp.float32, jnp.int32)
    out = make_eval_step(model)(state, {"logmel": batch["logmel"]})
    assert out["clip_probs"].dtype == jnp.float32 and out["clip_probs"].shape == (8, 2, 5)
    assert np.all(np.isfinite(np.asarray(out["clip_probs"])))


def test_learning_rate_is_in_the_state_and_changes_without_recompiling():
    model = create_model("gap", "test_tiny", axis_name="batch", **SMALL)
    step = make_train_step(model, alpha=0.0)
    state = create_train_state(model, jax.random.PRNGKey(0), 1e-3)
    x, t = _batch()
    batch = {"logmel": x.reshape(8, 2, *x.shape[1:]), "target": t.reshape(8, 2, -1)}
    state, m = step(state, batch, jax.random.PRNGKey(0))
    state = with_learning_rate(state, 1e-4)
    state, m = step(state, batch, jax.random.PRNGKey(0))
    assert float(m["learning_rate"]) == pytest.approx(1e-4)
    assert float(learning_rate_of(state)) == pytest.approx(1e-4)


def test_model_axis_name_must_match_step():
    with pytest.raises(ValueError, match="axis_name"):
        make_train_step(create_model("gap", "test_tiny", **SMALL), alpha=0.0)


def test_learning_rate_schedules():
    from twostep_jax.config import TrainConfig
    from twostep_jax.train.step import learning_rate_schedule
    assert learning_rate_schedule("plateau", 3e-3, 100) == 3e-3  # the loop lowers it on plateaus
    cosine = learning_rate_schedule("cosine", 3e-3, 100)
    np.testing.assert_allclose([float(cosine(s)) for s in (0, 50, 100)], [3e-3, 1.5e-3, 0.0], atol=1e-9)
    with pytest.raises(ValueError, match="schedule"):
        learning_rate_schedule("step", 3e-3, 100)
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig(lr_schedule="linear")


def test_ema_decay_warm_up():
    from twostep_jax.train.step import ema_decay_at
    # min(decay, (1 + t) / (10 + t)): 0.1 at the first update, the cap once t >= 890 for 0.99.
    np.testing.assert_allclose([float(ema_decay_at(t, 0.99)) for t in (0, 1, 90, 890, 5000)],
                               [0.1, 2 / 11, 0.91, 0.99, 0.99], rtol=1e-6)
    assert float(ema_decay_at(10, 0.5)) == 0.5


@pytest.mark.parametrize("parallel", ["single", "pmap"])
def test_ema_is_the_moving_average_and_leaves_training_unchanged(parallel):
    """Two steps with EMA: the raw weights are bit-identical to a run without it, and `ema` is
    d1 * (d0 * w0 + (1 - d0) * w1) + (1 - d1) * w2 with d_t = min(0.9, (1 + t) / (10 + t))."""
    axis = "batch" if parallel == "pmap" else None
    model = create_model("2apae", "test_tiny", axis_name=axis, **SMALL)
    step = make_train_step(model, alpha=0.001, axis_name=axis)
    x, t = _batch()
    batch = ({"logmel": x.reshape(8, 2, *x.shape[1:]), "target": t.reshape(8, 2, -1)} if axis
             else {"logmel": x, "target": t})
    plain = create_train_state(model, jax.random.PRNGKey(0), 1e-3)
    averaged = create_train_state(model, jax.random.PRNGKey(0), 1e-3, ema_decay=0.9)
    assert plain.ema is None and averaged.ema_decay == 0.9
    weights = [jax.device_get({"params": averaged.params, "batch_stats": averaged.batch_stats})]
    for i in range(2):
        plain, _ = step(plain, batch, jax.random.PRNGKey(i))
        averaged, _ = step(averaged, batch, jax.random.PRNGKey(i))
        weights.append(jax.device_get({"params": averaged.params, "batch_stats": averaged.batch_stats}))
    for a, b in zip(jax.tree.leaves(plain.params), jax.tree.leaves(averaged.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    d0, d1 = 0.1, 2 / 11
    expected = jax.tree.map(lambda w0, w1, w2: d1 * (d0 * w0 + (1 - d0) * w1) + (1 - d1) * w2, *weights)
    assert _tree_max_abs_diff(averaged.ema, expected) < 1e-6
    # ... and it is not just the current weights (the test could fail).
    assert _tree_max_abs_diff(averaged.ema["params"], weights[-1]["params"]) > 1e-5
    # The eval step of a state runs the averaged weights.
    eval_step = make_eval_step(model, pmapped=axis is not None)
    from_state = eval_step(averaged, {"logmel": batch["logmel"]})["clip_probs"]
    from_ema = eval_step(averaged.ema, {"logmel": batch["logmel"]})["clip_probs"]
    from_raw = eval_step({"params": averaged.params, "batch_stats": averaged.batch_stats},
                         {"logmel": batch["logmel"]})["clip_probs"]
    np.testing.assert_array_equal(np.asarray(from_state), np.asarray(from_ema))
    assert float(jnp.max(jnp.abs(from_state - from_raw))) > 1e-6


def test_ema_decay_must_be_below_one():
    from twostep_jax.config import TrainConfig
    with pytest.raises(ValueError, match="ema_decay"):
        TrainConfig(ema_decay=1.0)
    with pytest.raises(ValueError, match="ema_decay"):
        create_train_state(create_model("gap", "test_tiny", **SMALL), jax.random.PRNGKey(0), 1e-3,
                           ema_decay=-0.1)
