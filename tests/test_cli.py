"""The command lines, run as scripts: `evaluate.py --workdir RUN` in a fresh 1-device process, on a
copy of the session's tiny run without optimizer state, equals the 8-device in-process evaluation
(restore without optimizer, across device counts; report and predictions written).

evaluate.py's other commands are driven in-process by the tests of the modules behind them
(tests/evaluation/, tests/test_sweep.py); train.py has no command-line test."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def test_restore_reads_no_optimizer_and_matches_on_one_device(tiny_run, tmp_path):
    import jax

    assert jax.local_device_count() == 8
    # A copy of the run whose checkpoints have no optimizer state at all: restoring must not need it.
    workdir = tmp_path / "run"
    shutil.copytree(tiny_run.workdir, workdir)
    removed = [p for p in workdir.glob("checkpoints/*/*/opt_state")]
    assert removed, "the trainer's checkpoints should hold an opt_state item"
    for p in removed:
        shutil.rmtree(p)
    for p in workdir.glob("eval_test*"):
        p.unlink()

    # --batch 1: one clip per device, as in the 8-device run (8 clips / 8 devices), so both run the
    # same per-device computation; XLA may still schedule it differently (last-bit differences).
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, str(REPO / "evaluate.py"), "--workdir", str(workdir), "--batch", "1"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "micro-P" in proc.stdout and "| class |" in proc.stdout
    one = json.loads((workdir / "eval_test.json").read_text())
    assert (workdir / "eval_test.md").read_text() in proc.stdout
    eight = tiny_run.report
    assert (one["devices"], eight["devices"]) == (1, 8)
    assert one["checkpoint"] == eight["checkpoint"]
    p1 = np.load(workdir / "eval_test_predictions.npz")
    p8 = np.load(tiny_run.workdir / "eval_test_predictions.npz")
    np.testing.assert_array_equal(p1["mixture_name"], p8["mixture_name"])
    np.testing.assert_allclose(p1["clip_probs"], p8["clip_probs"], rtol=0, atol=1e-6)
    # The metrics are those of the predictions...
    from twostep_jax.metrics.clip import clip_metrics

    assert clip_metrics(p1["target"], p1["clip_probs"], list(one["clip"]["per_class"])) == one["clip"]
    # ...and equal the 8-device ones up to the float noise above (the untrained tiny model's
    # scores are nearly tied, so allow for a rank swap of two equal-up-to-1e-6 scores).
    for key in ("micro_ap", "macro_ap", "macro_auc"):
        assert one["clip"][key] == pytest.approx(eight["clip"][key], abs=1e-3), key
    for key in ("segment_f1", "segment_er", "event_f1", "psds1"):
        a, b = one["localisation"][key], eight["localisation"][key]
        assert (np.isnan(a) and np.isnan(b)) or a == pytest.approx(b, abs=1e-3), key
