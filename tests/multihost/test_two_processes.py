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
# 1 epoch of 2 steps + validation; a small learning rate keeps Adam's sign-like first steps from
# amplifying float noise (the two runs reduce over devices in different orders).
TRAIN_ARGS = ["--preset", "test_tiny", "--model", "2apae", "--snr", "20", "--test-fold", "1",
              "--val-fraction", "0.25", "--epochs", "1", "--global-batch", "8",
              "--learning-rate", "1e-4", "--no-progress"]


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
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(ref)):
        # Cross-process (gloo) reductions sum in another order than one process: ~1e-5 relative.
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    summary = json.loads((runs[form] / "train_summary.json").read_text())
    assert summary["processes"] == 2 and summary["devices"] == 2 and summary["parallel"] == form
    # Validation gathered the outputs of both processes: the same metric as one process.
    assert meta["best_val_micro_ap"] == pytest.approx(ref_meta["best_val_micro_ap"], abs=1e-6)
    # One log for the run (process 0's): every step once.
    steps = [json.loads(line)["step"] for line in (runs[form] / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["kind"] == "train"]
    assert steps == [1, 2]


def test_checkpoint_of_two_processes_evaluates_like_the_reference(runs):
    """evaluate.py here (one process, 8 devices) on the 2-process checkpoint = evaluate.py in the
    reference process, which ran without TensorFlow."""
    assert evaluate_cli("run", "--workdir", runs["sharded"], "--step", "2") == 0
    reports = {name: json.loads((runs[name] / "eval_test.json").read_text())
               for name in ("sharded", "reference")}
    for key in ("micro_ap", "macro_ap", "macro_auc"):
        assert reports["sharded"]["clip"][key] == pytest.approx(reports["reference"]["clip"][key], abs=1e-6)
    assert reports["sharded"]["localisation"] == pytest.approx(reports["reference"]["localisation"])
