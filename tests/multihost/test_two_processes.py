"""Multi-host on one machine: 2 processes x 2 fake CPU devices (jax.distributed over localhost,
gloo collectives), launched through train.py's multi-host flags, train `test_tiny` with each
parallel form; the parameters equal those of a single-process 4-device run, and the checkpoint
the two processes wrote restores in one process and evaluates to the same metrics."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from tests.fixtures import evaluate_cli
from twostep_jax.model.models import abstract_variables, model_from_config
from twostep_jax.train.checkpoint import Checkpoints

ROOT = Path(__file__).resolve().parents[2]
# 1 epoch of 2 steps + validation. The baseline CNN (BatchNorm, no decoder) compiles in half the
# time of 2APAE, and the model does not matter here: test_parallel.py checks 2APAE's step.
LR = 1e-4
TRAIN_ARGS = ["--preset", "test_tiny", "--model", "gap", "--snr", "20", "--test-fold", "1",
              "--val-fraction", "0.25", "--epochs", "1", "--global-batch", "8",
              "--learning-rate", str(LR), "--no-progress"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(devices: int, args: list[str], process_id: int | None = None, port: int = 0,
            processes: int = 1, then: list[str] = ()) -> subprocess.Popen:
    # The TF-free reader everywhere (faster to start; the reference blocks TensorFlow entirely).
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2",
               TWOSTEP_DATA_READER="tfrecord")
    env.pop("XLA_FLAGS", None)
    if process_id is not None:
        args = args + ["--coordinator-address", f"127.0.0.1:{port}", "--num-processes",
                       str(processes), "--process-id", str(process_id)]
    worker = [sys.executable, "-m", "tests.multihost.worker", str(devices)]
    if then:
        worker += ["--block-tensorflow"]
        args = args + ["--", *then]
    return subprocess.Popen([*worker, "--", *args],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def _wait(procs, timeout=240):
    outs = []
    for p in procs:
        try:
            out, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        outs.append(out)
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-4000:]
    return outs


@pytest.fixture(scope="module")
def runs(builtin_dataset, tmp_path_factory):
    """workdir per run: "pmap" and "sharded" (2 processes each, all 4 started together) and
    "reference" (1 process, 4 devices, pmap; trained and evaluated with TensorFlow imports
    blocked)."""
    root = tmp_path_factory.mktemp("multihost")
    workdirs = {name: root / name for name in ("pmap", "sharded", "reference")}
    procs = [_launch(4, TRAIN_ARGS + ["--data", builtin_dataset, "--workdir", str(workdirs["reference"])],
                     then=["run", "--workdir", str(workdirs["reference"]), "--step", "2"])]
    for form in ("pmap", "sharded"):
        port = _free_port()
        args = TRAIN_ARGS + ["--data", builtin_dataset, "--workdir", str(workdirs[form]),
                             "--parallel", form]
        procs += [_launch(2, args, i, port, 2) for i in range(2)]
    _wait(procs)
    return workdirs


def _train_log(workdir):
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()
            if json.loads(line)["kind"] == "train"]


def _latest(workdir):
    with Checkpoints(str(workdir), read_only=True) as ck:
        meta = ck.restore_meta()
        model = model_from_config(meta["config"]["model_config"])
        variables, meta, step = ck.restore_variables(abstract_variables(model), kind="latest")
    return jax.device_get(variables), meta, step


@pytest.mark.parametrize("form", ["pmap", "sharded"])
def test_two_processes_equal_one_process_with_4_devices(runs, form):
    ref, ref_meta, ref_step = _latest(runs["reference"])
    got, meta, step = _latest(runs[form])  # restored in this single process
    assert step == ref_step == 2
    # Every step's loss terms and gradient norm over the global batch: a wrong per-process slice
    # (duplicated or missing rows) changes them far beyond float noise.
    ref_log, log = _train_log(runs["reference"]), _train_log(runs[form])
    assert [r["step"] for r in log] == [1, 2]  # one log for the run (process 0's): every step once
    for r, g in zip(ref_log, log):
        for key in ("loss", "bce", "reconstruction_loss", "grad_norm"):
            assert g[key] == pytest.approx(r[key], rel=1e-5), (r["step"], key)
    np.testing.assert_allclose(np.concatenate([np.ravel(x) for x in jax.tree.leaves(got["batch_stats"])]),
                               np.concatenate([np.ravel(x) for x in jax.tree.leaves(ref["batch_stats"])]),
                               atol=1e-5)
    # Parameters: Adam's first steps move each one by ~lr times the sign of its gradient, so a
    # gradient that is ~0 (float noise: gloo sums over processes in another order) can flip one
    # element by up to 2 * lr. Almost all must agree to 1e-5, none by more than 2 steps.
    diff = np.concatenate([np.ravel(np.abs(np.asarray(a, np.float64) - b))
                           for a, b in zip(jax.tree.leaves(got["params"]), jax.tree.leaves(ref["params"]))])
    assert np.mean(diff > 1e-5) < 0.01 and diff.max() <= 2 * LR * 1.01, (np.mean(diff > 1e-5), diff.max())
    summary = json.loads((runs[form] / "train_summary.json").read_text())
    assert summary["processes"] == 2 and summary["devices"] == 2 and summary["parallel"] == form
    # Validation gathered the outputs of both processes: the same metric as one process.
    assert meta["best_val_micro_ap"] == pytest.approx(ref_meta["best_val_micro_ap"], abs=1e-6)


def test_checkpoint_of_two_processes_evaluates_like_the_reference(runs):
    """evaluate.py here (one process, 8 devices) on the 2-process checkpoint = evaluate.py in the
    reference process, which ran without TensorFlow."""
    assert evaluate_cli("run", "--workdir", runs["sharded"], "--step", "2") == 0
    reports = {name: json.loads((runs[name] / "eval_test.json").read_text())
               for name in ("sharded", "reference")}
    for key in ("micro_ap", "macro_ap", "macro_auc"):
        assert reports["sharded"]["clip"][key] == pytest.approx(reports["reference"]["clip"][key], abs=1e-6)
    assert reports["sharded"]["localisation"] == pytest.approx(reports["reference"]["localisation"])
