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
    # Per file: 3 lines, of tags (probability >= 0.5) or of top scores under a "nothing passed" line.
    for r in results.values():
        assert r["tags"] == [c for c, p in sorted(r["clip_probs"].items(), key=lambda kv: -kv[1]) if p >= 0.5]
    nothing = out.count("nothing passed the threshold 0.5")
    lines = [line for line in out.splitlines() if line.startswith("  ") and "figure:" not in line]
    assert len(lines) == 12 + nothing


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
    assert "corrupt.wav: not a readable audio file" in err
    assert "missing.wav: audio file not found" in err
    assert "none of the 3 file(s) could be tagged" in err

    assert evaluate_cli("--workdir", tiny_run.workdir, "--audio", silent, good) == 0
    captured = capsys.readouterr()
    assert "good.wav (2.00 s" in captured.out and "silent" in captured.err


def test_tags_do_not_depend_on_the_file_level(loaded_run, tmp_path):
    from twostep_jax.evaluation.tagging import tag_file

    audio = _tone(48000, 10, 2, seed=7)
    audio /= np.abs(audio).max()
    probs = []
    for gain_db in (-0.45, -6.0, -20.0, -40.0):  # peak 0.95, 0.5, 0.1, 0.01
        path = tmp_path / f"scene_{gain_db}.wav"
        soundfile.write(path, audio * 10 ** (gain_db / 20), 48000, subtype="PCM_24")
        probs.append(tag_file(loaded_run, str(path)).clip_probs)
    top = [list(np.argsort(-p)[:5]) for p in probs]
    assert all(t == top[0] for t in top), top
    for p in probs[1:]:
        np.testing.assert_allclose(p, probs[0], atol=2e-3)


def test_nothing_above_the_threshold_is_said_so_and_comes_out_empty(loaded_run, tmp_path):
    from twostep_jax.evaluation.tagging import format_result, result_json, tag_file

    path = tmp_path / "scene.wav"
    soundfile.write(path, _tone(32000, 10, 1, seed=3), 32000)
    result = tag_file(loaded_run, str(path), threshold=0.999)
    assert float(result.clip_probs.max()) < 0.999  # the untrained tiny model is never that sure
    assert result.events == []
    text = format_result(result, loaded_run.class_names, top=3)
    assert "nothing passed the threshold 0.999; top scores (not detections):" in text
    assert "active" not in text
    summary = result_json(result, loaded_run.class_names)
    assert summary["tags"] == [] and summary["events"] == []
