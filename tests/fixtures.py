"""Shared test helpers (imported as `from tests import fixtures`; the pytest fixtures built from
them live in tests/conftest.py).

* Tiny corpora written in the REAL dataset layouts, for data_prep / input-pipeline tests:
  - FSDKaggle2018 (Kaggle layout `train.csv` + `audio_train/`, or Zenodo layout): 44.1 kHz mono
    16-bit wavs; each clip a tone at a label-specific pitch, some longer than 2 s, some short.
  - TAU 2019 development (`meta.csv` tab-separated + `audio/`): 48 kHz stereo 24-bit, 10 s noise
    with different content per channel (so the down-mix matters).
  `built_dataset` builds (once per test session and parameter set) a tiny dcase-source TFDS
  dataset from them (2 mixtures per fold): the dcase reading path.
* The ONE tiny built-in dataset (`build_tiny_dataset`: 8 mixtures per fold, SNR 20 dB; the
  session fixture `builtin_dataset`) and a `test_tiny` run trained on it for one epoch through
  the real sweep path (`train_tiny_run`, the session fixture `tiny_run`), so the run folder holds
  everything a real one does: run_config.json, checkpoints/{latest,best}, eval_test.{json,md}.
* Small helpers several test modules use: fake clip arrays, tiny model shapes and forwards,
  evaluate.py's `main`.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np
import soundfile

from twostep_jax.data.features import FSD_CLASS_NAMES as CLASS_NAMES

# ------------------------------------------------------------------ corpora in the real layouts

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


def small_fsd(tmp_path: Path, rows=None) -> Path:
    """An 8-clip Kaggle-layout event corpus under `tmp_path / "fsd"`."""
    return write_fsd(tmp_path / "fsd", event_rows(8) if rows is None else rows)


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


def mixture_spec(tmp_path_factory, mixtures_per_fold: int = 2):
    """The recipe's MixtureSpec of the shared tiny corpus (what `built_dataset` renders)."""
    from data_prep import layouts, recipe

    events_dir, scenes_dir = corpus(tmp_path_factory)
    return recipe.create_mixture_spec(layouts.read_event_corpus(events_dir, CLASS_NAMES),
                                      layouts.read_scene_corpus(scenes_dir), CLASS_NAMES,
                                      mixtures_per_fold=mixtures_per_fold)


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


# ------------------------------------------------------------------ the tiny built-in dataset and run

TINY_SNR = 20
# 4 folds x 8 clips: a test fold of 8 clips is one clip per fake device (8-device evaluation);
# the 24 training-fold clips give the trainer 2 steps of 8 per epoch after a 25 % validation carve.
TINY_MIXTURES_PER_FOLD = 8


def build_tiny_dataset(out_dir: Path) -> Path:
    """The tiny built-in dataset under `out_dir`: 4 folds x 8 clips at SNR 20 dB.

    Built with 2 workers, so the builtin corpus and feature stages also run their process pools.
    """
    from data_prep.prepare import prepare_builtin

    # The real data's reuse ratio (min_verified_per_fold=0): 6 clips per class, not the demo
    # builds' 25 verified per class per fold, keeps generation to seconds.
    prepare_builtin(out_dir, snrs=[TINY_SNR], mixtures_per_fold=TINY_MIXTURES_PER_FOLD, workers=2,
                    min_verified_per_fold=0, log=lambda message: None)
    return out_dir


@dataclasses.dataclass
class TinyRun:
    data_dir: Path
    runs_dir: Path
    workdir: Path
    cell: object  # sweep.Cell
    report: dict  # the in-process (8-device) evaluation of the test fold


def tiny_cell(model: str = "2apae", alpha: float = 0.001, fold: int = 1):
    from twostep_jax.sweep import Cell

    # One epoch of test_tiny: 22 training clips -> 2 steps of 8; validation 2 clips.
    return Cell(model, alpha, TINY_SNR, fold, "test_tiny", (("epochs", 1),))


def train_tiny_run(data_dir: Path, root: Path) -> TinyRun:
    """Trains + evaluates one tiny 2APAE cell on `data_dir` in-process, under `root`."""
    import json

    from twostep_jax.sweep import train_and_test

    runs_dir = root / "runs"
    cell = tiny_cell()
    train_and_test(cell, str(data_dir), str(runs_dir))
    workdir = Path(cell.workdir(str(runs_dir)))
    report = json.loads((workdir / "eval_test.json").read_text())
    return TinyRun(Path(data_dir), runs_dir, workdir, cell, report)


def evaluate_cli(*args) -> int:
    """evaluate.py's `main` in this process (str() of every argument)."""
    import evaluate

    return evaluate.main([str(a) for a in args])


def normalize(run, logmel):
    """Log-mels z-scored with a restored run's training statistics."""
    from twostep_jax.data.input_pipeline import normalize as z_score

    return z_score(logmel, run.norm_stats)


# ------------------------------------------------------------------ arrays and tiny models


def rms(x) -> float:
    """Root mean square in float64 (the tests' own, not the code under test's)."""
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


T, F, K = 311, 64, 41


def fake_clips(n=50, seed=0):
    """`n` random clips at the data's shape: features distinct per clip, 2 folds, one event each."""
    from twostep_jax.data import dataset as ds

    rng = np.random.default_rng(seed)
    target = (rng.random((n, K)) < 0.07).astype(np.float32)
    return ds.ClipArrays(
        logmel=rng.normal(-3, 2, (n, T, F)).astype(np.float32) + np.arange(F, dtype=np.float32),
        target=target, mixture_name=np.array([f"{i:05d}.wav" for i in range(n)]),
        fold=np.repeat([1, 2], n // 2 + 1)[:n].astype(np.int32),
        events=[[(i % K, 0.5, 2.5)] for i in range(n)], scene_label=np.array(["park"] * n))


SMALL = dict(frames=24, mels=12, classes=5)  # tiny shapes for real forwards


def forward(model, x, seed=0, train=False):
    """(variables, outputs) of a freshly initialised model on `x`."""
    import jax

    variables = model.init(jax.random.PRNGKey(seed), x, train=False)
    if train:
        out, _ = model.apply(variables, x, train=True, mutable=["batch_stats"])
    else:
        out = model.apply(variables, x, train=False)
    return variables, out
