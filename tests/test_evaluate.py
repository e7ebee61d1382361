"""evaluate.py and its library: restore without optimizer across device counts, metrics,
checkpoint/data mismatch errors, Fig. 3, tagging arbitrary audio, resumable sweeps.

One tiny 2APAE run (test_tiny, 1 epoch, 8 fake devices) is trained once for the module.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

import run_fixtures

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return run_fixtures.train_tiny_run(tmp_path_factory.mktemp("evaluate"))


@pytest.fixture(scope="module")
def run(tiny):
    from twostep_jax.restore import load_run

    return load_run(str(tiny.workdir))


def _evaluate_cli(*args):
    import evaluate

    return evaluate.main([str(a) for a in args])


# ----------------------------------------------------------------------------- restore


def test_restore_reads_no_optimizer_and_matches_on_one_device(tiny, tmp_path):
    import jax

    assert jax.local_device_count() == 8
    # A copy of the run whose checkpoints have no optimizer state at all: restoring must not need it.
    workdir = tmp_path / "run"
    shutil.copytree(tiny.workdir, workdir)
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
    eight = tiny.report
    assert (one["devices"], eight["devices"]) == (1, 8)
    assert one["checkpoint"] == eight["checkpoint"]
    p1 = np.load(workdir / "eval_test_predictions.npz")
    p8 = np.load(tiny.workdir / "eval_test_predictions.npz")
    np.testing.assert_array_equal(p1["mixture_name"], p8["mixture_name"])
    np.testing.assert_allclose(p1["clip_probs"], p8["clip_probs"], rtol=0, atol=1e-6)
    # The metrics are those of the predictions...
    from twostep_jax.metrics import clip_metrics

    assert clip_metrics(p1["target"], p1["clip_probs"], list(one["clip"]["per_class"])) == one["clip"]
    # ...and equal the 8-device ones up to the float noise above (the untrained tiny model's
    # scores are nearly tied, so allow for a rank swap of two equal-up-to-1e-6 scores).
    for key in ("micro_ap", "macro_ap", "macro_auc"):
        assert one["clip"][key] == pytest.approx(eight["clip"][key], abs=1e-3), key
    for key in ("segment_f1", "segment_er", "event_f1", "psds1"):
        a, b = one["localisation"][key], eight["localisation"][key]
        assert (np.isnan(a) and np.isnan(b)) or a == pytest.approx(b, abs=1e-3), key


def test_step_flag_selects_latest_manager(tiny, run):
    from twostep_jax.checkpoint import Checkpoints
    from twostep_jax.restore import load_run

    with Checkpoints(str(tiny.workdir), read_only=True) as ckpts:
        latest = ckpts.latest_step("latest")
    by_step = load_run(str(tiny.workdir), step=latest)
    assert by_step.step == latest and by_step.kind == "latest"
    assert set(by_step.variables) == {"params", "batch_stats"}
    with pytest.raises(FileNotFoundError, match="no checkpoint at step 12345"):
        load_run(str(tiny.workdir), step=12345)


# ----------------------------------------------------------------------------- metrics


def test_metrics_equal_sklearn_on_the_same_predictions(tiny, run):
    from sklearn.metrics import average_precision_score, roc_auc_score

    from twostep_jax.run_eval import evaluate_split, load_split

    _, clips = load_split(run, "test")
    report, predictions = evaluate_split(run, "test")
    probs, y = predictions["clip_probs"], (predictions["target"] > 0.5).astype(int)
    assert list(predictions["mixture_name"]) == list(clips.mixture_name)
    # The pmapped batched path equals the single-device forward used by figures and tagging.
    single = np.concatenate([run.forward(_normalize(run, clips.logmel[i:i + 1]))["clip_probs"]
                             for i in range(len(clips))])
    np.testing.assert_allclose(probs, single, atol=1e-5)

    defined = (y.sum(0) > 0) & (y.sum(0) < len(y))
    assert report["clip"]["micro_ap"] == pytest.approx(average_precision_score(y, probs, average="micro"), abs=1e-12)
    assert report["clip"]["macro_ap"] == pytest.approx(
        average_precision_score(y[:, defined], probs[:, defined], average="macro"), abs=1e-12)
    assert report["clip"]["macro_auc"] == pytest.approx(roc_auc_score(y[:, defined], probs[:, defined]), abs=1e-12)
    for k in np.flatnonzero(defined):
        per_class = report["clip"]["per_class"][run.class_names[k]]
        assert per_class["ap"] == pytest.approx(average_precision_score(y[:, k], probs[:, k]), abs=1e-12)
        assert per_class["auc"] == pytest.approx(roc_auc_score(y[:, k], probs[:, k]), abs=1e-12)
    assert report["localisation"]["n_clips"] == len(clips)
    assert report["localisation"]["n_ref_events"] == sum(len(e) for e in clips.events)


def _normalize(run, logmel):
    from twostep_jax.input_pipeline import normalize

    return normalize(logmel, run.norm_stats)


def test_val_split_is_the_training_carve(tiny, run):
    from twostep_jax.run_eval import load_split
    from twostep_jax.trainer import load_training_data

    _, train, val, _ = load_training_data(run.config)
    _, val_split = load_split(run, "val")
    _, train_split = load_split(run, "train")
    assert list(val_split.mixture_name) == list(val.mixture_name)
    assert list(train_split.mixture_name) == list(train.mixture_name)
    assert not set(val_split.mixture_name) & set(train_split.mixture_name)


# ----------------------------------------------------------------------------- mismatch errors


def test_checkpoint_of_another_model_is_a_clear_error(tiny, tmp_path, capsys):
    from twostep_jax.config import model_config
    from twostep_jax.restore import CheckpointMismatchError, load_run

    with pytest.raises(CheckpointMismatchError, match=r"head: 'two_step' vs 'gap'"):
        load_run(str(tiny.workdir), expected_model=model_config("gap", "test_tiny"))

    workdir = tmp_path / "run"
    shutil.copytree(tiny.workdir, workdir)
    cfg = json.loads((workdir / "run_config.json").read_text())
    cfg["preset"] = "cpu_small"  # the run dir now asks for a wider model than the checkpoint holds
    (workdir / "run_config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointMismatchError, match=r"channels: \[2, 4, 4, 8\] vs \[8, 16, 24, 32\]"):
        load_run(str(workdir))
    assert _evaluate_cli("--workdir", workdir) == 2
    assert "differs from the run's run_config.json" in capsys.readouterr().err

    assert _evaluate_cli("--workdir", tmp_path / "nothing") == 2
    assert "not a run directory" in capsys.readouterr().err


def test_data_of_other_classes_or_fingerprint_is_refused(run):
    import dataclasses

    from twostep_jax import input_pipeline
    from twostep_jax.restore import CheckpointMismatchError, check_data

    info = input_pipeline.load_dataset_info(run.config.data_dir, run.config.snr)
    check_data(run, info)
    other_classes = dataclasses.replace(info, class_names=info.class_names[:-1] + ("Zebra",))
    with pytest.raises(CheckpointMismatchError, match="same class list"):
        check_data(run, other_classes, allow_other_data=True)
    rebuilt = dataclasses.replace(info, fingerprint="0123456789abcdef")
    with pytest.raises(CheckpointMismatchError, match="--allow-other-data"):
        check_data(run, rebuilt)
    check_data(run, rebuilt, allow_other_data=True)


# ----------------------------------------------------------------------------- figures


def test_figures_have_seven_panels_and_ground_truth(tiny, run, capsys):
    from twostep_jax.clip_figures import figure_arrays, safe_filename
    from twostep_jax.figures import N_PANELS, build_attention_figure
    from twostep_jax.run_eval import HOP_S, load_split

    _, clips = load_split(run, "test")
    name = str(clips.mixture_name[0])
    assert _evaluate_cli("--workdir", tiny.workdir, "--figure", name, "--figure-random", "1", "--seed", "3") == 0
    written = [Path(p) for p in capsys.readouterr().out.split()]
    assert len(written) == 2 and written[0].name == f"test_{safe_filename(name)}.png"
    for p in written:
        assert p.parent == tiny.workdir / "figures" and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    x = _normalize(run, clips.logmel[:1])
    fig = build_attention_figure(x[0], class_names=run.class_names, ref_events=clips.events[0], hop_s=HOP_S,
                                 **figure_arrays(run.forward(x), 0))
    assert len(fig.axes) == N_PANELS == 7

    assert _evaluate_cli("--workdir", tiny.workdir, "--figure", "no_such_clip") == 2
    assert "not in this split" in capsys.readouterr().err


# ----------------------------------------------------------------------------- tagging


def _tone(sr: int, seconds: float, channels: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    mono = 0.3 * np.sin(2 * np.pi * 440 * t) * (np.sin(2 * np.pi * 0.5 * t) > 0) + 0.02 * rng.standard_normal(t.size)
    return np.stack([mono * (1 + 0.1 * c) for c in range(channels)], axis=1).astype(np.float32)


def test_tagging_any_rate_channels_and_length(tiny, run, tmp_path, capsys):
    files = {}
    for sr, channels in ((8000, 2), (48000, 1)):
        for seconds in (3, 25):
            path = tmp_path / f"sr{sr}_ch{channels}_{seconds}s.wav"
            soundfile.write(path, _tone(sr, seconds, channels, seed=sr + seconds), sr)
            files[path] = seconds
    figures = tmp_path / "figs"
    assert _evaluate_cli("--workdir", tiny.workdir, "--audio", *files, "--top", "3", "--figure-out", figures) == 0
    out = capsys.readouterr().out
    results = {Path(r["path"]).name: r for r in json.loads((figures / "tags.json").read_text())}
    assert len(results) == 4
    for path, seconds in files.items():
        r = results[path.name]
        assert r["duration_s"] == pytest.approx(seconds, abs=1e-3)
        assert f"{path} ({seconds:.2f} s" in out
        assert len(r["clip_probs"]) == len(run.class_names)
        assert all(0.0 <= e["onset_s"] < e["offset_s"] <= seconds + 1e-6 for e in r["events"])
        if seconds == 3:
            assert r["padded"] and r["window_starts_s"] == [0.0]
            assert [Path(p).name for p in r["figures"]] == [f"{path.stem}.png"]
        else:
            # 25 s -> 780 frames: windows at frames 0, 311 and (end-aligned) 469.
            assert not r["padded"]
            assert r["window_starts_s"] == pytest.approx([0.0, 311 * 0.032, 469 * 0.032])
            assert len(r["figures"]) == 3
        assert all(Path(p).is_file() for p in r["figures"])
    # 3 tag lines per file.
    assert sum(1 for line in out.splitlines() if line.startswith("  ") and "figure:" not in line) == 12


def test_tagging_features_equal_training_features_per_window():
    from twostep_jax.features import CLIP_SAMPLES, HOP, logmel
    from twostep_jax.tagging import audio_logmel, frame_windows

    audio = _tone(32000, 21.3, 1, seed=0)[:, 0]
    mel, padded = audio_logmel(audio)
    starts = frame_windows(mel.shape[0], 311)
    assert not padded and starts == [0, 311, mel.shape[0] - 311]
    for s in starts:
        excerpt = audio[s * HOP:s * HOP + CLIP_SAMPLES]
        if excerpt.size < CLIP_SAMPLES:  # the STFT of 311 frames never reads the last 512 samples
            excerpt = np.pad(excerpt, (0, CLIP_SAMPLES - excerpt.size))
        np.testing.assert_allclose(mel[s:s + 311], logmel(excerpt), atol=1e-5)
    short, padded = audio_logmel(audio[:32000])
    assert padded and short.shape == (311, 64)


def test_silent_and_corrupt_files_get_clear_messages(tiny, tmp_path, capsys):
    silent = tmp_path / "silent.wav"
    soundfile.write(silent, np.zeros(16000, np.float32), 16000)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(range(256)))
    good = tmp_path / "good.wav"
    soundfile.write(good, _tone(16000, 2, 1, seed=1), 16000)

    assert _evaluate_cli("--workdir", tiny.workdir, "--audio", silent, corrupt, tmp_path / "missing.wav") == 2
    err = capsys.readouterr().err
    assert "silent.wav: audio is silent" in err
    assert "corrupt.wav: cannot decode audio" in err
    assert "missing.wav: audio file not found" in err
    assert "none of the 3 file(s) could be tagged" in err

    assert _evaluate_cli("--workdir", tiny.workdir, "--audio", silent, good) == 0
    captured = capsys.readouterr()
    assert "good.wav (2.00 s" in captured.out and "silent" in captured.err


# ----------------------------------------------------------------------------- sweep and tables


def test_sweep_skips_finished_runs_and_writes_tables(tiny, monkeypatch, capsys):
    from twostep_jax import sweep

    finished = tiny.cell
    new = run_fixtures.tiny_cell("gap", 0.0)
    monkeypatch.setitem(sweep.GRIDS, "unit", lambda: [finished, new])
    monkeypatch.setattr(sweep, "use_compilation_cache", lambda runs_dir: None)  # no global jax config
    calls = []

    def fake_cell(cell, data_dir, runs_dir):
        # Stands in for training: a finished run folder with the tiny run's metrics.
        calls.append(cell)
        workdir = Path(cell.workdir(runs_dir))
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "run_config.json").write_text(json.dumps(cell.config(data_dir).to_dict()))
        (workdir / "eval_test.json").write_text(json.dumps(tiny.report))
        return tiny.report

    markdown = sweep.run_sweep("unit", str(tiny.data_dir), str(tiny.runs_dir), run_cell=fake_cell)
    assert calls == [new]
    out = capsys.readouterr().out
    assert "2 runs, 1 already finished, 1 to run" in out and "[1/1] gap α=0 snr20 fold1" in out
    assert "| 2APAE |" in markdown and "| GAP |" in markdown
    for name in ("table_iv.md", "table_iv.csv", "table_iv.png", "table_v.md"):
        assert (tiny.runs_dir / name).is_file()
    assert Path(new.workdir(str(tiny.runs_dir))) == tiny.runs_dir / "gap_a0" / "snr20" / "fold1"

    sweep.run_sweep("unit", str(tiny.data_dir), str(tiny.runs_dir), run_cell=fake_cell)
    assert calls == [new]  # nothing left to run
    assert _evaluate_cli("--table", tiny.runs_dir) == 0
    assert "Table IV" in capsys.readouterr().out


def test_grids():
    from twostep_jax import sweep

    paper = sweep.grid("paper_table4")
    assert len(paper) == 8 * 3 * 4 and {c.preset for c in paper} == {"paper"}
    assert {(c.model, c.alpha) for c in paper} == {
        ("2apae", 0.001), ("2apae", 0.0), ("2apae", 0.01), ("gap", 0.0), ("gmp", 0.0), ("gwrp", 0.0),
        ("atrous_ap", 0.0), ("attention", 0.0)}
    assert len({c.workdir("R") for c in paper}) == len(paper)
    assert paper[0].workdir("R") == os.path.join("R", "2apae_a0.001", "snr0", "fold1")
    quick = sweep.grid("quick")
    assert {c.preset for c in quick} == {"cpu_small"}
    for cell in quick:
        cell.config("DATA")  # every cell is a valid TrainConfig
    with pytest.raises(ValueError, match="unknown sweep"):
        sweep.grid("nope")


def test_sweep_goes_on_after_a_diverged_run(tiny, tmp_path, monkeypatch):
    from twostep_jax import sweep
    from twostep_jax.trainer import NonFiniteLossError

    runs_dir = tmp_path / "runs"
    shutil.copytree(tiny.workdir, Path(tiny.cell.workdir(str(runs_dir))))  # a finished cell
    diverging, after = run_fixtures.tiny_cell("gmp", 0.0), run_fixtures.tiny_cell("gwrp", 0.0)
    monkeypatch.setitem(sweep.GRIDS, "unit", lambda: [tiny.cell, diverging, after])
    monkeypatch.setattr(sweep, "use_compilation_cache", lambda runs_dir: None)
    calls = []

    def fake_cell(cell, data_dir, runs_dir):
        calls.append(cell)
        if cell == diverging:
            raise NonFiniteLossError("non-finite loss at step 3")
        workdir = Path(cell.workdir(runs_dir))
        workdir.mkdir(parents=True)
        (workdir / "run_config.json").write_text(json.dumps(cell.config(data_dir).to_dict()))
        (workdir / "eval_test.json").write_text(json.dumps(tiny.report))
        return tiny.report

    with pytest.raises(sweep.SweepIncompleteError, match=r"1 run\(s\) diverged.*gmp_a0"):
        sweep.run_sweep("unit", str(tiny.data_dir), str(runs_dir), run_cell=fake_cell)
    assert calls == [diverging, after]
    assert "| GWRP |" in (runs_dir / "table_iv.md").read_text()
