"""Tagging arbitrary audio files with a restored run: clip tags + when each tag is active.

    result = tag_file(run, "street.wav", threshold=0.5)
    print(format_result(result, run.class_names, top=5))

Any sample rate, channel count and length: `data.features.load_audio` down-mixes and resamples to
32 kHz, and `features.logmel` computes the training features (no STFT centring, so frame g of the
whole file is exactly frame g - s of a 10 s window starting at frame s). The file's log-mel is cut
into 311-frame (10 s) windows:

* longer than 10 s: successive windows at frames 0, 311, 622, ...; the last one is aligned to the
  file's end (it overlaps its predecessor instead of padding). Clip probability = max over
  windows; frame activity = max over the windows covering a frame.
* shorter than 10 s: the audio is repeated (wrapped) to 10 s rather than zero-padded: digital
  silence gives log(1e-8) features far outside anything seen in training (every training mixture
  has a full 10 s scene), and would pull the attention. Only activity within the real duration
  is reported.

Level: the recipe peak-normalises every training mixture (data_prep/mixing.py: the event and
scene tracks are divided by their joint peak and averaged, so a mixture peaks at about half full
scale), and the log-mel turns a gain into an offset the network has never seen. So a file is
scaled to peak `RECIPE_PEAK` before its features: the same recording at any gain gets the same
tags. Digitally silent files (peak below -90 dBFS) are refused: their features are out of
distribution and any tag would be meaningless.

Detections are the classes whose clip probability reaches the threshold, and the time ranges are
reported for those only: a file where no class does comes out empty ("nothing passed the
threshold"), with the top scores shown as scores, not as detections.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np

from twostep_jax.data.features import (CLIP_SAMPLES, HOP_S, N_MELS, SAMPLE_RATE, AudioError,
                                       load_audio, logmel)
from twostep_jax.data.input_pipeline import normalize
from twostep_jax.evaluation.restore import LoadedRun
from twostep_jax.fileio import safe_filename
from twostep_jax.metrics.sed import frame_probs_to_events
from twostep_jax.viz.figures import figure_arrays, plot_attention_figure

SILENCE_PEAK = 10 ** (-90 / 20)  # -90 dBFS: below the 16-bit noise floor's typical dither
RECIPE_PEAK = 0.5  # |sample| peak user audio is scaled to: a mixture's, where one track dominates


@dataclasses.dataclass
class TagResult:
    """What the model says about one file (K classes, W windows, T' real frames)."""

    path: str
    duration_s: float
    window_starts_s: list[float]  # [W] start time of each 10 s window
    padded: bool  # shorter than one window: repeated to fill it
    clip_probs: np.ndarray  # [K] max over windows
    frame_probs: np.ndarray  # [T', K] frames starting within the real duration
    events: list[tuple[int, float, float]]  # (class, onset_s, offset_s) of detected classes only
    threshold: float
    figures: list[Path] = dataclasses.field(default_factory=list)


def frame_windows(num_frames: int, window: int) -> list[int]:
    """Start frames of `window`-frame windows covering `num_frames` (>= window) frames."""
    starts = list(range(0, num_frames - window + 1, window))
    if starts[-1] + window < num_frames:
        starts.append(num_frames - window)  # end-aligned last window
    return starts


def audio_logmel(audio: np.ndarray) -> tuple[np.ndarray, bool]:
    """Log-mel `[max(T_file, 311), 64]` of 32 kHz mono audio, repeated to 10 s if shorter."""
    padded = audio.shape[0] < CLIP_SAMPLES
    if padded:
        audio = np.resize(audio, CLIP_SAMPLES)  # np.resize repeats the signal
    return logmel(audio), padded


def tag_file(run: LoadedRun, path: str, threshold: float = 0.5, figure_dir: str | Path | None = None) -> TagResult:
    """Tags one file (see module docstring); raises `data.features.AudioError` for unusable audio."""
    if run.model_config.mels != N_MELS:
        raise ValueError(f"the model takes {run.model_config.mels} mel bins, the feature extractor "
                         f"computes {N_MELS}: this run cannot tag audio files")
    audio = load_audio(path, SAMPLE_RATE)
    peak = float(np.max(np.abs(audio)))
    if peak < SILENCE_PEAK:
        level = "-inf" if peak == 0 else f"{20 * np.log10(peak):.0f}"
        raise AudioError(f"{path}: audio is silent (peak {level} dBFS); nothing to tag")
    audio = audio * np.float32(RECIPE_PEAK / peak)  # the recipe's level (module docstring)
    duration = audio.shape[0] / SAMPLE_RATE
    mel, padded = audio_logmel(audio)
    frames = run.model_config.frames
    starts = frame_windows(mel.shape[0], frames)
    x = normalize(np.stack([mel[s:s + frames] for s in starts]), run.norm_stats)  # [W, T, F]

    num_classes = len(run.class_names)
    clip_probs = np.zeros(num_classes, np.float32)
    timeline = np.zeros((mel.shape[0], num_classes), np.float32)
    figures = []
    for w, s in enumerate(starts):
        # One window per call: a single compiled batch size whatever the file length.
        out = run.forward(x[w:w + 1])
        clip_probs = np.maximum(clip_probs, out["clip_probs"][0])
        timeline[s:s + frames] = np.maximum(timeline[s:s + frames], out["frame_probs"][0])
        if figure_dir is not None:
            figures.append(_window_figure(run, path, x[w], out, w, len(starts), s * HOP_S, duration, padded,
                                          figure_dir))
    # Frames starting within the real audio (the last may overhang it by less than a frame).
    real = min(timeline.shape[0], int(np.ceil(duration / HOP_S - 1e-9)))
    timeline = timeline[:real]
    detected = clip_probs >= threshold
    events = [e for e in frame_probs_to_events(timeline, HOP_S, threshold, clip_duration=duration)
              if detected[e[0]]]
    return TagResult(path=str(path), duration_s=duration, window_starts_s=[s * HOP_S for s in starts],
                     padded=padded, clip_probs=clip_probs, frame_probs=timeline, events=events,
                     threshold=threshold, figures=figures)


def _window_figure(run, path, x, outputs, w, num_windows, start_s, duration, padded, figure_dir) -> Path:
    stem = safe_filename(Path(path).stem)
    name = f"{stem}.png" if num_windows == 1 else f"{stem}_w{w}.png"
    span = (f"repeated to 10 s beyond {duration:.2f} s" if padded
            else f"window {w + 1}/{num_windows}: {start_s:.2f}–{start_s + x.shape[0] * HOP_S:.2f} s")
    return plot_attention_figure(Path(figure_dir) / name, x, class_names=run.class_names, hop_s=HOP_S,
                                 title=f"{Path(path).name} ({span}) — {run.config.model}",
                                 **figure_arrays(outputs, 0))


def _ranges(events, k: int) -> str:
    spans = [f"{on:.2f}–{off:.2f} s" for c, on, off in events if c == k]
    return ", ".join(spans)


def format_result(result: TagResult, class_names: Sequence[str], top: int = 5) -> str:
    """Human-readable top tags with probabilities and active time ranges."""
    n = len(result.window_starts_s)
    how = "repeated to 10 s" if result.padded else f"{n} window{'s' if n > 1 else ''} of 10 s"
    lines = [f"{result.path} ({result.duration_s:.2f} s, {how}):"]
    width = max(len(c) for c in class_names)
    order = np.argsort(-result.clip_probs, kind="stable")
    detected = [int(k) for k in order if result.clip_probs[k] >= result.threshold][:top]
    if not detected:
        lines.append(f"  nothing passed the threshold {result.threshold:g}; top scores (not detections):")
        for k in order[:top]:
            lines.append(f"  {class_names[k]:<{width}}  {result.clip_probs[k]:.3f}")
    for k in detected:
        spans = _ranges(result.events, k)
        where = f"active {spans}" if spans else f"(no frame above {result.threshold:g})"
        lines.append(f"  {class_names[k]:<{width}}  {result.clip_probs[k]:.3f}  {where}")
    for p in result.figures:
        lines.append(f"  figure: {p}")
    return "\n".join(lines)


def result_json(result: TagResult, class_names: Sequence[str]) -> dict:
    """A JSON-serialisable summary (all class probabilities and active ranges)."""
    return {
        "path": result.path, "duration_s": result.duration_s, "padded": result.padded,
        "window_starts_s": result.window_starts_s, "threshold": result.threshold,
        "clip_probs": {c: float(p) for c, p in zip(class_names, result.clip_probs)},
        "tags": [class_names[k] for k in np.argsort(-result.clip_probs, kind="stable")
                 if result.clip_probs[k] >= result.threshold],
        "events": [{"label": class_names[k], "onset_s": on, "offset_s": off} for k, on, off in result.events],
        "figures": [str(p) for p in result.figures],
    }
