"""Tiny corpora written in the REAL dataset layouts, for data_prep / input-pipeline tests.

* FSDKaggle2018 (Kaggle layout `train.csv` + `audio_train/`, or Zenodo layout): 44.1 kHz mono
  16-bit wavs; each clip a tone at a label-specific pitch, some longer than 2 s, some short.
* TAU 2019 development (`meta.csv` tab-separated + `audio/`): 48 kHz stereo 24-bit, 10 s noise
  with different content per channel (so the down-mix matters).
`built_dataset` builds (once per test session and parameter set) a tiny TFDS dataset from them.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import soundfile

from twostep_jax.features import CLASS_NAMES

EVENT_SR = 44100
SCENE_SR = 48000
LABELS = CLASS_NAMES[:6]  # a few real FSD labels


def write_wav(path: Path, audio: np.ndarray, sr: int, subtype: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), audio, sr, subtype=subtype, format="WAV")
    return path


def tone(duration: float, freq: float, sr: int = EVENT_SR, amp: float = 0.5,
         seed: int = 0) -> np.ndarray:
    """A tone with a little noise (a real recording is never a pure sinusoid): [n]."""
    n = int(round(duration * sr))
    t = np.arange(n) / sr
    rng = np.random.default_rng(seed)
    return amp * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(n)


def event_rows(n_clips: int = 32, seed: int = 0) -> list[tuple[str, str, int, float]]:
    """(fname, label, manually_verified, duration) rows: ~75% verified, durations 0.3-3.5 s."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_clips):
        label = LABELS[i % len(LABELS)]
        verified = int(i % 4 != 3)
        duration = float(rng.choice([0.3, 0.75, 1.25, 1.9, 2.6, 3.5]))
        rows.append((f"{i:08x}.wav", label, verified, duration))
    return rows


def write_fsd(root: Path, rows=None, layout: str = "kaggle") -> Path:
    """FSDKaggle2018 train set in the Kaggle or Zenodo layout; returns `root`."""
    rows = event_rows() if rows is None else rows
    if layout == "kaggle":
        csv_path, audio_dir = root / "train.csv", root / "audio_train"
        header, extra = "fname,label,manually_verified", lambda i: ""
    else:
        csv_path = root / "FSDKaggle2018.meta" / "train_post_competition.csv"
        audio_dir = root / "FSDKaggle2018.audio_train"
        header, extra = ("fname,label,manually_verified,freesound_id,license",
                         lambda i: f",{100000 + i},Attribution")
    for i, (fname, label, _, duration) in enumerate(rows):
        freq = 300.0 * (1 + LABELS.index(label)) if label in LABELS else 440.0
        write_wav(audio_dir / fname, tone(duration, freq, seed=i), EVENT_SR, "PCM_16")
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    csv_path.write_text(header + "\n" + "".join(
        f"{f},{label},{v}{extra(i)}\n" for i, (f, label, v, _) in enumerate(rows)))
    return root


SCENE_LABELS = ("airport", "park", "tram", "bus")


def write_tau(root: Path, n_scenes: int = 8, sr: int = SCENE_SR, seconds: float = 10.0) -> Path:
    """TAU 2019 development layout: 48 kHz stereo 24-bit scenes; returns `root`."""
    lines = ["filename\tscene_label\tidentifier\tsource_label"]
    for i in range(n_scenes):
        label = SCENE_LABELS[i % len(SCENE_LABELS)]
        name = f"{label}-barcelona-{i // 4}-{i}-a.wav"
        rng = np.random.default_rng(1000 + i)
        n = int(round(seconds * sr))
        left = 0.2 * rng.standard_normal(n)
        right = 0.5 * left + 0.1 * rng.standard_normal(n)  # correlated, not identical
        write_wav(root / "audio" / name, np.stack([left, right], axis=1), sr, "PCM_24")
        lines.append(f"audio/{name}\t{label}\tbarcelona-{i // 4}\ta")
    (root / "meta.csv").write_text("\n".join(lines) + "\n")
    return root


@functools.lru_cache(maxsize=None)
def _corpus(base: str) -> tuple[Path, Path]:
    base = Path(base)
    return write_fsd(base / "fsd"), write_tau(base / "tau")


def corpus(tmp_path_factory) -> tuple[Path, Path]:
    """(events_dir, scenes_dir) of the shared tiny corpus, written once per session."""
    return _corpus(str(tmp_path_factory.getbasetemp() / "shared_corpus"))


@functools.lru_cache(maxsize=None)
def _built(base: str, events: str, scenes: str, snrs: tuple[int, ...], workers: int) -> Path:
    from data_prep import prepare

    out = Path(base)
    prepare.prepare_dcase(events, scenes, out, snrs, mixtures_per_fold=2, workers=workers,
                          log=lambda message: None)
    return out


def built_dataset(tmp_path_factory, snrs=(0, 20), workers: int = 1) -> Path:
    """DATA_DIR of a tiny dcase-source dataset (2 mixtures per fold), built once per session."""
    events, scenes = corpus(tmp_path_factory)
    name = f"built_{'_'.join(map(str, snrs))}_w{workers}"
    return _built(str(tmp_path_factory.getbasetemp() / name), str(events), str(scenes),
                  tuple(snrs), workers)
