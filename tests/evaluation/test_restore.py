"""twostep_jax.evaluation.restore: restoring a checkpoint by step, and the clear errors for a
checkpoint of another model or data of other classes / another build (also through evaluate.py).

Restoring without optimizer state on another device count is tested end to end in
tests/test_cli.py.
"""

import json
import shutil

import pytest

from tests.fixtures import evaluate_cli


def test_step_flag_selects_latest_manager(tiny_run, loaded_run):
    from twostep_jax.train.checkpoint import Checkpoints
    from twostep_jax.evaluation.restore import load_run

    with Checkpoints(str(tiny_run.workdir), read_only=True) as ckpts:
        latest = ckpts.latest_step("latest")
    by_step = load_run(str(tiny_run.workdir), step=latest)
    assert by_step.step == latest and by_step.kind == "latest"
    assert by_step.weights == "raw"  # no --ema-decay: the raw weights (an EMA run: test_loop.py)
    assert set(by_step.variables) == {"params", "batch_stats"}
    # The tiny run is 2APAE: it states its α (a baseline's says "no decoder, α unused").
    assert by_step.describe().startswith(f"2apae (test_tiny, α = {by_step.config.alpha:g}) snr")
    with pytest.raises(FileNotFoundError, match="no checkpoint at step 12345"):
        load_run(str(tiny_run.workdir), step=12345)


def test_checkpoint_of_another_model_is_a_clear_error(tiny_run, tmp_path, capsys):
    from twostep_jax.config import model_config
    from twostep_jax.evaluation.restore import CheckpointMismatchError, load_run

    with pytest.raises(CheckpointMismatchError, match=r"head: 'two_step' vs 'gap'"):
        load_run(str(tiny_run.workdir), expected_model=model_config("gap", "test_tiny"))

    workdir = tmp_path / "run"
    shutil.copytree(tiny_run.workdir, workdir)
    cfg = json.loads((workdir / "run_config.json").read_text())
    cfg["preset"] = "cpu_small"  # the run dir now asks for a wider model than the checkpoint holds
    (workdir / "run_config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointMismatchError, match=r"channels: \[2, 4, 4, 8\] vs \[8, 16, 24, 32\]"):
        load_run(str(workdir))
    assert evaluate_cli("--workdir", workdir) == 2
    assert "differs from the run's run_config.json" in capsys.readouterr().err

    assert evaluate_cli("--workdir", tmp_path / "nothing") == 2
    assert "not a run directory" in capsys.readouterr().err


def test_data_of_other_classes_or_fingerprint_is_refused(loaded_run):
    import dataclasses

    from twostep_jax.data import dataset
    from twostep_jax.evaluation.restore import CheckpointMismatchError, check_data

    info = dataset.load_dataset_info(loaded_run.config.data_dir, loaded_run.config.snr)
    check_data(loaded_run, info)
    other_classes = dataclasses.replace(info, class_names=info.class_names[:-1] + ("Zebra",))
    with pytest.raises(CheckpointMismatchError, match="same class list"):
        check_data(loaded_run, other_classes, allow_other_data=True)
    rebuilt = dataclasses.replace(info, fingerprint="0123456789abcdef")
    with pytest.raises(CheckpointMismatchError, match="--allow-other-data"):
        check_data(loaded_run, rebuilt)
    check_data(loaded_run, rebuilt, allow_other_data=True)
