"""Failure and recovery of a training run (issue 14): a failed first run never blocks its own
workdir, one run per workdir, unreadable checkpoints are skipped on resume and named in one
line by evaluate.py, a full disk is one line and the re-run resumes, user errors of train.py
are one line with exit code 2."""

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import orbax.checkpoint as ocp
import pytest

from tests.fixtures import evaluate_cli
from twostep_jax.config import train_config
from twostep_jax.data import dataset
from twostep_jax.train.checkpoint import Checkpoints, CorruptCheckpointError
from twostep_jax.train.loop import NonFiniteLossError, train_and_evaluate
from twostep_jax.train.metric_writer import read_metrics
from twostep_jax.train.workdir import WorkdirBusyError

REPO = Path(__file__).resolve().parents[2]


def _config(data_dir, **kw):
    base = dict(model="2apae", data_dir=str(data_dir), snr=20, test_fold=1, val_fraction=0.25,
                epochs=1, global_batch=8, learning_rate=3e-3, progress=False, log_every_steps=1)
    base.update(kw)
    return train_config("test_tiny", **base)


def _corrupt(step_dir: Path, item: str = "params") -> None:
    """Overwrites every data file of a checkpoint item (what a bad disk or a stray copy does)."""
    files = [p for p in (step_dir / item).rglob("*") if p.is_file() and p.parent.name == "d"]
    assert files, f"no data files under {step_dir / item}"
    for p in files:
        p.write_bytes(b"\x00garbage" * 7)


def test_failed_first_runs_do_not_block_the_workdir(builtin_dataset, tmp_path, capsys):
    workdir = tmp_path / "run"
    dataset.clear_cache()
    # Nothing is written, and no clip decoded, before the checks that can fail.
    with pytest.raises(FileNotFoundError, match="does not exist"):
        train_and_evaluate(_config(tmp_path / "no_data"), str(workdir))
    with pytest.raises(ValueError, match="not divisible"):
        train_and_evaluate(_config(builtin_dataset, global_batch=12), str(workdir))
    assert not workdir.exists()
    assert not dataset._FOLD_CACHE
    # A NaN in the first epoch leaves no checkpoint: the corrected command takes the folder over.
    with pytest.raises(NonFiniteLossError, match="run again"):
        train_and_evaluate(_config(builtin_dataset, learning_rate=1e30), str(workdir))
    with Checkpoints(str(workdir), read_only=True) as ck:
        assert ck.latest_step() is None
    capsys.readouterr()
    summary = train_and_evaluate(_config(builtin_dataset), str(workdir))
    out = capsys.readouterr().out
    assert "saved no checkpoint; starting over" in out and "learning_rate" in out
    assert summary["steps"] == 2
    assert [r["step"] for r in read_metrics(str(workdir), "train")] == [1, 2]
    # The header: dataset, clips per split, devices, preset.
    assert "clips: train 18, validation 6" in out and "test 8 (fold 1)" in out
    assert "devices: 8 x" in out and "preset test_tiny" in out


def test_a_second_run_on_one_workdir_is_refused_and_a_killed_one_blocks_nothing(builtin_dataset, tmp_path):
    workdir = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from twostep_jax.train.workdir import run_lock\n"
         "with run_lock(sys.argv[1]):\n    print('locked', flush=True); time.sleep(600)", str(workdir)],
        cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(WorkdirBusyError, match=f"pid {holder.pid}"):
            train_and_evaluate(_config(builtin_dataset), str(workdir))
    finally:
        holder.kill()  # SIGKILL: the kernel releases the flock
        holder.wait()
    from twostep_jax.train.workdir import run_lock

    with run_lock(str(workdir)):
        assert (workdir / ".train.lock").read_text().strip() == str(os.getpid())


def _tb_steps(workdir: Path) -> list[int]:
    """Steps of the scalar events in a run's TensorBoard files (record framing parsed here)."""
    import struct

    from tensorboardX.proto.event_pb2 import Event

    steps = []
    for path in sorted((workdir / "tensorboard").glob("*tfevents*")):
        data, pos = path.read_bytes(), 0
        while pos + 12 <= len(data):
            (n,) = struct.unpack_from("<Q", data, pos)
            event = Event.FromString(data[pos + 12:pos + 12 + n])
            if event.HasField("summary"):
                steps += [event.step] * len(event.summary.value)
            pos += 16 + n
    return sorted(steps)


def test_resume_truncates_metrics_and_tensorboard_after_the_restored_step(tmp_path):
    from twostep_jax.train.metric_writer import MetricWriter

    w = MetricWriter(str(tmp_path))
    for step in (1, 2, 3, 4, 5):
        w.write(step, "train", {"loss": 1.0 / step})
    w.close()
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 6, "kind": "tr')  # a torn last line (kill -9 mid-write)
    w = MetricWriter(str(tmp_path))
    w.truncate_after(3)
    for step in (4, 5):
        w.write(step, "train", {"loss": 0.5})
    w.close()
    assert [r["step"] for r in read_metrics(str(tmp_path))] == [1, 2, 3, 4, 5]
    assert _tb_steps(tmp_path) == [1, 2, 3, 4, 5]


@pytest.fixture(scope="module")
def three_epochs(builtin_dataset, tmp_path_factory):
    """A 3-epoch run (2 steps per epoch, latest kept at steps 4 and 6)."""
    workdir = tmp_path_factory.mktemp("three") / "run"
    train_and_evaluate(_config(builtin_dataset, epochs=3), str(workdir))
    return workdir


def test_resume_skips_an_unreadable_checkpoint(builtin_dataset, three_epochs, tmp_path, capsys):
    workdir = tmp_path / "run"
    shutil.copytree(three_epochs, workdir)
    with Checkpoints(str(workdir), read_only=True) as ck:
        assert ck.all_steps() == [4, 6]
        best = ck.latest_step("best")
    _corrupt(workdir / "checkpoints" / "latest" / "6")
    capsys.readouterr()
    summary = train_and_evaluate(_config(builtin_dataset, epochs=4), str(workdir))
    out = capsys.readouterr().out
    assert "skipped unreadable checkpoint(s)" in out and "latest/6 is unreadable: item 'params'" in out
    assert "using step 4" in out and "resuming" in out and "from step 4" in out
    # Steps 5-6 were recomputed (a `best` saved before at step 6 does not collide).
    assert summary["steps"] == 8
    with Checkpoints(str(workdir), read_only=True) as ck:
        assert ck.all_steps() == [6, 8]
        assert ck.latest_step("best") is not None
    assert best is not None
    steps = [r["step"] for r in read_metrics(str(workdir), "train")]
    assert steps == list(range(1, 9))


def test_steps_after_the_resumed_one_are_discarded_and_a_saved_step_is_replaced(tmp_path):
    import types

    import jax.numpy as jnp

    from twostep_jax.train.checkpoint import BEST, LATEST

    def state(v):
        return types.SimpleNamespace(params={"w": jnp.full((2,), v)}, batch_stats={"b": jnp.ones(1)},
                                     opt_state={"m": jnp.zeros(2)})

    with Checkpoints(str(tmp_path)) as ck:
        ck.save(2, state(2.0), {"step": 2})
        ck.save(4, state(4.0), {"step": 4}, (LATEST, BEST))  # a best saved before a crash
        ck.wait()
        ck.discard_after(2, log=lambda m: None)
        assert (ck.all_steps(LATEST), ck.all_steps(BEST)) == ([2], [])
        ck.save(4, state(4.5), {"step": 4, "epoch": 1}, (LATEST, BEST))  # recomputed: no collision
        ck.save(4, state(4.5), {"step": 4, "epoch": 2}, (LATEST,))  # the epoch-end save replaces
        ck.wait()
        assert ck.restore_meta(4) == {"step": 4, "epoch": 2}
        assert ck.all_steps(BEST) == [4]


def test_evaluate_names_the_unreadable_checkpoint_and_item(three_epochs, tmp_path, capsys):
    workdir = tmp_path / "run"
    shutil.copytree(three_epochs, workdir)
    (best,) = [p for p in (workdir / "checkpoints" / "best").iterdir() if p.name.isdigit()]
    _corrupt(best, "params")
    capsys.readouterr()
    assert evaluate_cli("run", "--workdir", workdir) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"evaluate.py: error: checkpoint {best} is unreadable: item 'params'")
    others = sorted({4, 6} - {int(best.name)})
    assert f"other kept steps: {others} (evaluate one with --step N)" in err[0]
    with pytest.raises(CorruptCheckpointError):
        from twostep_jax.evaluation.restore import load_run

        load_run(str(workdir))


def test_a_full_disk_is_one_line_and_the_rerun_resumes(builtin_dataset, tmp_path, monkeypatch, capsys):
    import train

    workdir = tmp_path / "run"
    saves = {"n": 0}
    original = ocp.JsonCheckpointHandler.async_save

    async def full_after_first(self, directory, *args, **kwargs):
        saves["n"] += 1
        if saves["n"] > 1:  # the meta item of every save after the first: ENOSPC from the OS
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(directory))
        return await original(self, directory, *args, **kwargs)

    monkeypatch.setattr(ocp.JsonCheckpointHandler, "async_save", full_after_first)
    argv = ["--data", builtin_dataset, "--workdir", str(workdir), "--preset", "test_tiny",
            "--epochs", "1", "--val-fraction", "0.25", "--checkpoint-every-steps", "1",
            "--no-progress"]
    capsys.readouterr()
    assert train.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"train.py: error: no space left on {workdir / 'checkpoints'}: checkpoint at "
                   "step 2 not written; the last good checkpoint is step 1"]
    # Nothing that looks committed: step 2 is at most an orbax tmp folder (removed on restart).
    assert not (workdir / "checkpoints" / "latest" / "2").exists()
    monkeypatch.setattr(ocp.JsonCheckpointHandler, "async_save", original)
    assert train.main(argv) == 0
    assert "from step 1" in capsys.readouterr().out
    with Checkpoints(str(workdir), read_only=True) as ck:
        assert ck.latest_step() == 2


@pytest.mark.parametrize("flags, message", [
    (["--epochs", "0"], "epochs must be positive"),
    (["--alpha", "-1"], "alpha must be >= 0"),
    (["--learning-rate", "0"], "learning_rate must be positive"),
])
def test_train_cli_bad_values_are_one_line(builtin_dataset, tmp_path, capsys, flags, message):
    import train

    assert train.main(["--data", builtin_dataset, "--workdir", str(tmp_path / "w"), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("train.py: error: ") and message in err[0], err
    assert not (tmp_path / "w").exists()


def test_train_cli_read_only_workdir_is_one_line(builtin_dataset, tmp_path, capsys, monkeypatch):
    import train

    def read_only(path, *args, **kwargs):  # what a read-only mount answers (tests run as root)
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    monkeypatch.setattr(os, "makedirs", read_only)
    workdir = tmp_path / "w"
    assert train.main(["--data", builtin_dataset, "--workdir", str(workdir), "--preset", "test_tiny"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"train.py: error: {workdir}: Read-only file system"]
