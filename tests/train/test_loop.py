"""twostep_jax.train.loop: end-to-end training on the tiny built-in dataset (tests/fixtures.py):
learning, checkpoints, exact resume, refusal."""

import json
import os

import jax
import numpy as np
import pytest

from twostep_jax.train.checkpoint import Checkpoints
from twostep_jax.config import train_config
from twostep_jax.train.metric_writer import read_metrics
from twostep_jax.model.models import abstract_variables, model_from_config
from twostep_jax.train.loop import NonFiniteLossError, train_and_evaluate
from twostep_jax.train.workdir import WorkdirMismatchError


def _config(data_dir, **kw):
    base = dict(model="2apae", data_dir=data_dir, snr=20, test_fold=1, val_fraction=0.25, epochs=3,
                global_batch=8, learning_rate=3e-3, progress=False, log_every_steps=2)
    base.update(kw)
    return train_config("test_tiny", **base)


def _final_params(workdir):
    with Checkpoints(workdir, read_only=True) as ck:
        meta = ck.restore_meta()
        model = model_from_config(meta["config"]["model_config"])
        variables, _, step = ck.restore_variables(abstract_variables(model), kind="latest")
    return variables, step


@pytest.fixture(scope="module")
def uninterrupted(builtin_dataset, tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("run") / "a")
    summary = train_and_evaluate(_config(builtin_dataset), workdir)
    return workdir, summary


def test_tiny_run_learns_and_writes_everything(uninterrupted):
    workdir, summary = uninterrupted
    train = read_metrics(workdir, "train")
    steps_per_epoch = summary["steps"] // 3
    assert summary["steps"] == len(train) == 3 * steps_per_epoch > 0
    first = np.mean([r["loss"] for r in train[:steps_per_epoch]])
    last = np.mean([r["loss"] for r in train[-steps_per_epoch:]])
    assert last < first, (first, last)
    val = read_metrics(workdir, "val")
    assert [r["epoch"] for r in val] == [1, 2, 3]
    assert all(0 <= r["micro_ap"] <= 1 for r in val)
    assert summary["best_val_micro_ap"] == max(r["micro_ap"] for r in val)
    for name in ("run_config.json", "train_summary.json", "metrics.jsonl"):
        assert os.path.exists(os.path.join(workdir, name)), name
    # Normalisation statistics are saved once, in the checkpoint's meta (not in a side file).
    assert not os.path.exists(os.path.join(workdir, "norm_stats.json"))
    with Checkpoints(workdir, read_only=True) as ckpts:
        stats = ckpts.restore_meta()["norm_stats"]
    assert len(stats["mean"]) == len(stats["std"]) > 0
    assert os.listdir(os.path.join(workdir, "tensorboard"))
    with open(os.path.join(workdir, "run_config.json")) as f:
        cfg = json.load(f)
    assert (cfg["model"], cfg["snr"], cfg["test_fold"], cfg["alpha"]) == ("2apae", 20, 1, 0.001)


def test_checkpoints_restore_without_optimizer(uninterrupted):
    workdir, summary = uninterrupted
    with Checkpoints(workdir, read_only=True) as ck:
        meta = ck.restore_meta(kind="best")
        assert meta["best_epoch"] == summary["best_epoch"]
        model = model_from_config(meta["config"]["model_config"])
        variables, meta, step = ck.restore_variables(abstract_variables(model))
        assert set(variables) == {"params", "batch_stats"}
        assert meta["epoch"] == summary["best_epoch"]
        assert len(meta["class_names"]) == 41 and len(meta["norm_stats"]["mean"]) == 64
    out = model.apply(variables, np.zeros((1, 311, 64), np.float32), train=False)
    assert np.all(np.isfinite(np.asarray(out["clip_probs"])))


def test_kill_and_resume_gives_the_uninterrupted_parameters(builtin_dataset, uninterrupted, tmp_path):
    workdir_a, summary = uninterrupted
    workdir_b = str(tmp_path / "b")
    stop_at = summary["steps"] // 3 + 1  # one step into the second epoch, after its checkpoint
    out = train_and_evaluate(_config(builtin_dataset), workdir_b, should_stop=lambda s: s == stop_at)
    assert out == {"stopped_at_step": stop_at}
    train_and_evaluate(_config(builtin_dataset), workdir_b)  # same command again: resumes
    (va, step_a), (vb, step_b) = _final_params(workdir_a), _final_params(workdir_b)
    assert step_a == step_b == summary["steps"]
    for x, y in zip(jax.tree.leaves(va), jax.tree.leaves(vb)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    # The resumed log has each step exactly once.
    steps = [r["step"] for r in read_metrics(workdir_b, "train")]
    assert steps == list(range(1, summary["steps"] + 1))


def test_cosine_schedule_decays_every_step_and_resumes_exactly(builtin_dataset, tmp_path):
    config = _config(builtin_dataset, lr_schedule="cosine", epochs=2)
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    summary = train_and_evaluate(config, a)
    total = summary["steps"]
    # Step k (1-based) uses 3e-3 * (1 + cos(pi * (k - 1) / total)) / 2: no plateau cuts.
    logged = [r["learning_rate"] for r in read_metrics(a, "train")]
    expected = 3e-3 * 0.5 * (1 + np.cos(np.pi * np.arange(total) / total))
    np.testing.assert_allclose(logged, expected, rtol=1e-5)
    val = read_metrics(a, "val")
    assert all(r["next_learning_rate"] == r["learning_rate"] for r in val)
    # Killed in the second epoch and re-run: the schedule continues from the restored step count.
    stop_at = total // 2 + 1
    assert train_and_evaluate(config, b, should_stop=lambda s: s == stop_at) == {"stopped_at_step": stop_at}
    train_and_evaluate(config, b)
    (va, _), (vb, _) = _final_params(a), _final_params(b)
    for x, y in zip(jax.tree.leaves(va), jax.tree.leaves(vb)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    np.testing.assert_allclose([r["learning_rate"] for r in read_metrics(b, "train")], expected, rtol=1e-5)


def test_workdir_of_another_config_is_refused(builtin_dataset, uninterrupted):
    workdir, _ = uninterrupted
    with pytest.raises(WorkdirMismatchError, match="alpha"):
        train_and_evaluate(_config(builtin_dataset, alpha=0.01), workdir)
    with pytest.raises(WorkdirMismatchError, match="model"):
        train_and_evaluate(_config(builtin_dataset, model="gap"), workdir)


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(builtin_dataset, tmp_path):
    # An absurd learning rate: Adam's first update moves every weight by ~1e30, so the next
    # forward pass overflows float32 and the loss becomes NaN at step 2.
    workdir = str(tmp_path / "nan")
    cfg = _config(builtin_dataset, learning_rate=1e30, checkpoint_every_steps=1, log_every_steps=1)
    with pytest.raises(NonFiniteLossError, match="last good checkpoint"):
        train_and_evaluate(cfg, workdir)
    variables, step = _final_params(workdir)
    assert step == 1
    assert all(np.all(np.isfinite(np.asarray(v))) for v in jax.tree.leaves(variables))
    steps = [r["step"] for r in read_metrics(workdir, "train")]
    assert steps == [1]


def test_weight_average_is_checkpointed_resumed_exactly_and_evaluated(builtin_dataset, tmp_path):
    from twostep_jax.evaluation.restore import load_run
    from twostep_jax.train.step import create_train_state

    config = _config(builtin_dataset, ema_decay=0.9, epochs=2)
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    summary = train_and_evaluate(config, a)
    stop_at = summary["steps"] // 2 + 1
    assert train_and_evaluate(config, b, should_stop=lambda s: s == stop_at) == {"stopped_at_step": stop_at}
    train_and_evaluate(config, b)  # resumes: the average continues from the checkpointed one

    def latest_state(workdir):
        model = model_from_config(config.model_config())
        template = create_train_state(model, jax.random.PRNGKey(1), 1e-3, ema_decay=0.9)
        with Checkpoints(workdir, read_only=True) as ck:
            return ck.restore_train_state(template)[0]

    sa, sb = latest_state(a), latest_state(b)
    assert int(sa.step) == int(sb.step) == summary["steps"]
    for x, y in zip(jax.tree.leaves((sa.params, sa.ema)), jax.tree.leaves((sb.params, sb.ema))):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    # Evaluation loads the averaged weights of the best checkpoint, not the raw ones.
    run = load_run(a, step=summary["steps"])
    assert run.weights == "ema" and "moving-average" in run.describe()
    for x, y in zip(jax.tree.leaves(run.variables), jax.tree.leaves(sa.ema)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    raw = {"params": sa.params, "batch_stats": sa.batch_stats}
    assert max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
               for x, y in zip(jax.tree.leaves(run.variables), jax.tree.leaves(raw))) > 1e-6
