"""Audio mixing at a given SNR, exactly as Kong's `create_mixed_audio` + feature step (ref §2.4).

All audio is 32 kHz mono here (down-mix and resampling happen in `twostep_jax.data.features.load_audio`).
* Scene: cropped/zero-padded to 10 s, then scaled to RMS 1.
* Event: scaled so that the RMS of its *whole file* is 10^(SNR/20) (RMS 1 = 0 dB re. the scene);
  its first (offset - onset) s are written into a zero 10 s event track at int(onset * 32000).
  So the SNR is per event: whole-event-file RMS versus whole-scene RMS.
* Both tracks are divided by their joint peak |sample|; the mixture is their mean.
Events are scaled to RMS 1 once (`unit_rms_segment`) and the SNR gain is applied to the whole
event track (`mix_at_snr`), so one pair of tracks serves every SNR.

Known deviations from the released code, all far below anything a model could notice: it wrote
the two tracks to a 16-bit wav and averaged them when reading it back (we mix in float64, i.e.
without quantisation noise at -96 dB re. the joint peak), and its librosa (0.6) resampled with
'kaiser_best' where current librosa's default is soxr 'hq'.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from twostep_jax.data.features import CLIP_SAMPLES, SAMPLE_RATE, AudioError


def rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))


def db_to_amplitude(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def unit_rms_segment(audio: np.ndarray, num_samples: int, source: str = "") -> np.ndarray:
    """`audio` scaled to RMS 1 over the whole file, then its first `num_samples`: [<= n]."""
    level = rms(audio)
    if not level > 0.0:
        raise AudioError(f"{source}: event audio is silent (RMS 0), its SNR is undefined")
    return np.asarray(audio[:num_samples], dtype=np.float64) / level


def scene_track(audio: np.ndarray, source: str = "",
                clip_samples: int = CLIP_SAMPLES) -> np.ndarray:
    """The scene cropped/zero-padded to the clip length and scaled to RMS 1: [clip_samples] f64."""
    track = np.zeros(clip_samples, dtype=np.float64)
    n = min(len(audio), clip_samples)
    track[:n] = audio[:n]
    level = rms(track)
    if not level > 0.0:
        raise AudioError(f"{source}: scene audio is silent (RMS 0)")
    return track / level


def onset_sample(onset_s: float, sample_rate: int = SAMPLE_RATE) -> int:
    # round(), not Kong's int(): identical for the recipe's onsets (0.5/3.0/5.5 s x 32 kHz are
    # integers) and immune to float error such as int(0.29 * 100) == 28.
    return int(round(onset_s * sample_rate))


def event_samples(onset_s: float, offset_s: float, sample_rate: int = SAMPLE_RATE) -> int:
    """Number of samples an event occupies in the track."""
    return onset_sample(offset_s, sample_rate) - onset_sample(onset_s, sample_rate)


def unit_event_track(segments: Sequence[tuple[np.ndarray, float]],
                     clip_samples: int = CLIP_SAMPLES,
                     sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Event track at 0 dB: each unit-RMS segment added at its onset: [clip_samples] f64.

    segments: [(unit-RMS audio [n], onset seconds)].
    """
    track = np.zeros(clip_samples, dtype=np.float64)
    for segment, onset_s in segments:
        start = onset_sample(onset_s, sample_rate)
        n = min(len(segment), clip_samples - start)
        if start < 0 or n <= 0:
            raise ValueError(f"event onset {onset_s} s lies outside the {clip_samples}-sample clip")
        track[start:start + n] += segment[:n]
    return track


@dataclasses.dataclass(frozen=True)
class MixedTracks:
    """Peak-normalised tracks and their mixture, each [clip_samples] float64."""

    events: np.ndarray
    scene: np.ndarray
    mixture: np.ndarray


def mix_at_snr(unit_events: np.ndarray, scene: np.ndarray, snr_db: float) -> MixedTracks:
    """Scales the 0 dB event track to `snr_db`, peak-normalises both tracks jointly, averages."""
    events = unit_events * db_to_amplitude(snr_db)
    peak = max(float(np.max(np.abs(events))), float(np.max(np.abs(scene))))
    events, scene = events / peak, scene / peak
    return MixedTracks(events=events, scene=scene, mixture=0.5 * (events + scene))
