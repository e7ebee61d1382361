"""twostep_jax.evaluation.tagging: tagging arbitrary audio (any rate, channels, length) through
evaluate.py, its features equal the training features per window, clear messages for unusable
files."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.fixtures import evaluate_cli


def _tone(sr: int, seconds: float, channels: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    mono = 0.3 * np.sin(2 * np.pi * 440 * t) * (np.sin(2 * np.pi * 0.5 * t) > 0) + 0.02 * rng.standard_normal(t.size)
    return np.stack([mono * (1 + 0.1 * c) for c in range(channels)], axis=1).astype(np.float32)


def test_tagging_any_rate_channels_and_length(tiny_run, loaded_run, tmp_path, capsys):
    files = {}
    for sr, channels in ((8000, 2), (48000, 1)):
        for seconds in (3, 25):
            path = tmp_path / f"sr{sr}_ch{channels}_{seconds}s.wav"
            soundfile.write(path, _tone(sr, seconds, channels, seed=sr + seconds), sr)
            files[path] = seconds
    figures = tmp_path / "figs"
    assert evaluate_cli("--workdir", tiny_run.workdir, "--audio", *files, "--top", "3", "--figure-out", figures) == 0
    out = capsys.readouterr().out
    results = {Path(r["path"]).name: r for r in json.loads((figures / "tags.json").read_text())}
    assert len(results) == 4
    for path, seconds in files.items():
        r = results[path.name]
        assert r["duration_s"] == pytest.approx(seconds, abs=1e-3)
        assert f"{path} ({seconds:.2f} s" in out
        assert len(r["clip_probs"]) == len(loaded_run.class_names)
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
    from twostep_jax.data.features import CLIP_SAMPLES, HOP, logmel
    from twostep_jax.evaluation.tagging import audio_logmel, frame_windows

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


def test_silent_and_corrupt_files_get_clear_messages(tiny_run, tmp_path, capsys):
    silent = tmp_path / "silent.wav"
    soundfile.write(silent, np.zeros(16000, np.float32), 16000)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(range(256)))
    good = tmp_path / "good.wav"
    soundfile.write(good, _tone(16000, 2, 1, seed=1), 16000)

    assert evaluate_cli("--workdir", tiny_run.workdir, "--audio", silent, corrupt, tmp_path / "missing.wav") == 2
    err = capsys.readouterr().err
    assert "silent.wav: audio is silent" in err
    assert "corrupt.wav: cannot decode audio" in err
    assert "missing.wav: audio file not found" in err
    assert "none of the 3 file(s) could be tagged" in err

    assert evaluate_cli("--workdir", tiny_run.workdir, "--audio", silent, good) == 0
    captured = capsys.readouterr()
    assert "good.wav (2.00 s" in captured.out and "silent" in captured.err
