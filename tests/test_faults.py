"""Fault injection (issue 14): SIGKILL a training run three times in a row at random steps
between checkpoints, and a data_prep run three times at random stages; the re-runs end with
exactly the uninterrupted results (parameters; dataset content and file hashes)."""

import hashlib
import os
import random
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np

from tests import fixtures
from twostep_jax.config import train_config
from twostep_jax.model.models import abstract_variables, model_from_config
from twostep_jax.train.checkpoint import Checkpoints
from twostep_jax.train.loop import train_and_evaluate
from twostep_jax.train.metric_writer import read_metrics

REPO = Path(__file__).resolve().parents[1]
EPOCHS = 3  # 2 steps per epoch; checkpoints at the epoch ends: steps 2, 4, 6
CHECKPOINT_STEPS = {2, 4, 6}
SEED = int(os.environ.get("FAULTS_SEED", "14"))

# The child trains exactly as this process does (the conftest's XLA settings) and reports every
# step on stdout, so the parent can kill it while it runs.
TRAIN_CHILD = textwrap.dedent("""
    import sys
    import tests.conftest  # noqa: F401  (8 fake devices, the test session's XLA options)
    from tests.test_faults import config
    from twostep_jax.train.loop import train_and_evaluate

    def report(step):
        print(f"step {step}", flush=True)
        return False

    train_and_evaluate(config(sys.argv[1]), sys.argv[2], should_stop=report)
    print("finished", flush=True)
""")


def config(data_dir):
    return train_config("test_tiny", model="2apae", data_dir=str(data_dir), snr=20, test_fold=1,
                        val_fraction=0.25, epochs=EPOCHS, global_batch=8, learning_rate=3e-3,
                        progress=False, log_every_steps=1)


def _params(workdir):
    with Checkpoints(str(workdir), read_only=True) as ck:
        meta = ck.restore_meta()
        model = model_from_config(meta["config"]["model_config"])
        variables, _, step = ck.restore_variables(abstract_variables(model), kind="latest")
    return variables, step


def _run_child(args, kill_when, env=None):
    """Runs a child process; SIGKILLs it as soon as `kill_when(line)` is true for an output
    line. Returns (return code, output lines)."""
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env)
    lines = []
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        if kill_when(lines[-1]):
            proc.send_signal(signal.SIGKILL)
            break
    proc.stdout.close()
    return proc.wait(timeout=600), lines


def test_training_killed_three_times_ends_with_the_uninterrupted_parameters(builtin_dataset, tmp_path):
    reference = tmp_path / "reference"
    summary = train_and_evaluate(config(builtin_dataset), str(reference))
    total = summary["steps"]
    assert total == 2 * EPOCHS

    rng = random.Random(SEED)
    workdir = tmp_path / "killed"
    resumed_from = 0
    child = [sys.executable, "-c", TRAIN_CHILD, str(builtin_dataset), str(workdir)]
    for kill in range(3):
        # A step strictly between checkpoints, after the one this run resumes from.
        target = rng.choice([s for s in range(resumed_from + 1, total) if s not in CHECKPOINT_STEPS])
        code, lines = _run_child(child, lambda line: line == f"step {target}")
        assert code == -signal.SIGKILL, (kill, target, lines[-20:])
        with Checkpoints(str(workdir), read_only=True) as ck:
            resumed_from = ck.latest_step() or 0
        assert resumed_from <= target
    code, lines = _run_child(child, lambda line: False)
    assert code == 0 and lines[-1] == "finished", lines[-20:]
    assert any(f"from step {resumed_from}" in line for line in lines) or resumed_from == 0

    (va, step_a), (vb, step_b) = _params(reference), _params(workdir)
    assert step_a == step_b == total
    for x, y in zip(jax.tree.leaves(va), jax.tree.leaves(vb)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert [r["step"] for r in read_metrics(str(workdir), "train")] == list(range(1, total + 1))


def _hashes(data_dir: Path) -> dict[str, str]:
    root = data_dir / "tfds"
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_data_prep_killed_three_times_builds_the_same_bytes(builtin_dataset, tmp_path):
    from twostep_jax.data import dataset as ds

    reference = Path(builtin_dataset)  # built in-process, with this process's hash seed
    out = tmp_path / "data"
    args = [sys.executable, "-m", "data_prep", "--source", "builtin", "--out", str(out),
            "--snr", str(fixtures.TINY_SNR), "--mixtures-per-fold", str(fixtures.TINY_MIXTURES_PER_FOLD),
            "--workers", "2", "--min-verified-per-fold", "0"]  # as the session's tiny build
    # Stages a build announces on its way; each kill lands at one of them, at random (or at the
    # last one, which every unfinished build reaches, when a resumed run skips the chosen stage).
    stages = [r"^builtin corpus: generating", r"^events:", r"^features: \d+ mixtures", r"^writing TFRecord"]
    last = re.compile(stages[-1])
    rng = random.Random(SEED)
    for kill in range(3):
        stage = re.compile(rng.choice(stages))
        env = dict(os.environ, PYTHONHASHSEED=str(kill + 1))  # tfds' map order followed this
        code, lines = _run_child(args, lambda line: bool(stage.search(line) or last.search(line)), env)
        assert code == -signal.SIGKILL, (kill, stage.pattern, lines[-20:])
    code, lines = _run_child(args, lambda line: False, dict(os.environ, PYTHONHASHSEED="4"))
    assert code == 0, lines[-20:]
    assert not (out / ".prepare.lock").exists() or (out / "tfds").is_dir()

    assert _hashes(out) == _hashes(reference)
    a = ds.load_folds(reference, fixtures.TINY_SNR, [1, 2, 3, 4])
    b = ds.load_folds(out, fixtures.TINY_SNR, [1, 2, 3, 4])
    np.testing.assert_array_equal(a.logmel, b.logmel)
    assert a.mixture_name.tolist() == b.mixture_name.tolist()
