"""Audio loading and the recipe's log-mel features (ref §2.1, §2.4, §2.5), pure numpy/librosa.

No TensorFlow here: data preparation workers and the evaluation code (which tags arbitrary wav
files) both import this module, and neither must pay for or be affected by TF.

Feature definition, exactly as Kong's `utils/features.py` (the paper's data):
  * audio: mono (channels averaged), resampled to 32 kHz with `librosa.resample`;
  * STFT: symmetric Hamming window of 2048, hop 1024, no centring/padding, one-sided magnitude
    with `scipy.signal.spectrogram(..., mode='magnitude')` scaling (fs=1, 'density'), i.e.
    |rfft(hamming * frame)| / sqrt(sum(hamming**2));
  * mel: `librosa.filters.mel(sr=32000, n_fft=2048, n_mels=64, fmin=50, fmax=16000)` (Slaney mel
    scale and area normalisation) applied to the *magnitude*;
  * log: natural log(mel + 1e-8), float32.
A 10 s clip (320,000 samples) gives 1 + (320000 - 2048) // 1024 = 311 frames.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from typing import Iterator

import numpy as np

SAMPLE_RATE = 32000
WINDOW = 2048
HOP = 1024
N_MELS = 64
FMIN = 50.0
FMAX = 16000.0
CLIP_SECONDS = 10
CLIP_SAMPLES = SAMPLE_RATE * CLIP_SECONDS
FRAMES = 1 + (CLIP_SAMPLES - WINDOW) // HOP  # 311
HOP_S = HOP / SAMPLE_RATE  # seconds per frame (0.032): frame i covers [i * HOP_S, (i + 1) * HOP_S)
LOG_OFFSET = 1e-8

# The 41 FSDKaggle2018 labels in Kong's alphabetical order; index = position (ref §2.8).
FSD_CLASS_NAMES = (
    "Acoustic_guitar", "Applause", "Bark", "Bass_drum", "Burping_or_eructation", "Bus", "Cello",
    "Chime", "Clarinet", "Computer_keyboard", "Cough", "Cowbell", "Double_bass",
    "Drawer_open_or_close", "Electric_piano", "Fart", "Finger_snapping", "Fireworks", "Flute",
    "Glockenspiel", "Gong", "Gunshot_or_gunfire", "Harmonica", "Hi-hat", "Keys_jangling", "Knock",
    "Laughter", "Meow", "Microwave_oven", "Oboe", "Saxophone", "Scissors", "Shatter", "Snare_drum",
    "Squeak", "Tambourine", "Tearing", "Telephone", "Trumpet", "Violin_or_fiddle", "Writing",
)
assert len(FSD_CLASS_NAMES) == 41 and list(FSD_CLASS_NAMES) == sorted(FSD_CLASS_NAMES)


class AudioError(ValueError):
    """An audio file that cannot be used: missing, unreadable, corrupt, empty or non-finite."""


def load_audio(path: str | os.PathLike, target_sr: int = SAMPLE_RATE) -> np.ndarray:
    """Reads a sound file as mono float32 at `target_sr`: [samples].

    Channels are averaged (Kong's down-mix), then `librosa.resample` (its default resampler,
    soxr 'hq') converts the rate when it differs. Raises `AudioError` naming the file when it is
    missing, cannot be decoded, holds no samples, or contains NaN/inf.
    """
    import soundfile  # local: keeps `import twostep_jax.data.features` cheap for the constants.

    path = os.fspath(path)
    if os.path.isdir(path):
        raise AudioError(f"{path}: is a directory, not an audio file")
    if not os.path.isfile(path):
        raise AudioError(f"{path}: audio file not found")
    try:
        with _quiet_stderr():
            audio, sr = soundfile.read(path, dtype="float32", always_2d=True)
    except Exception as e:  # libsndfile raises several types (LibsndfileError, RuntimeError, ...)
        raise AudioError(f"{path}: not a readable audio file ({_decoder_reason(e)})") from e
    if audio.shape[0] == 0 or audio.shape[1] == 0:
        raise AudioError(f"{path}: file holds no audio samples")
    mono = audio.mean(axis=1, dtype=np.float32)
    if not np.all(np.isfinite(mono)):
        raise AudioError(f"{path}: audio contains NaN or infinite samples")
    if sr != target_sr:
        import librosa

        mono = librosa.resample(mono, orig_sr=sr, target_sr=target_sr)
    return np.ascontiguousarray(mono, dtype=np.float32)


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Sends file descriptor 2 to /dev/null for the block: libsndfile's mpg123 decoder prints
    "Note: ..." lines from C while probing a non-MP3 file, past Python's sys.stderr."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _decoder_reason(e: Exception) -> str:
    """libsndfile's reason without the file name it repeats; its text for bytes that its MPEG
    probe rejects ("File does not exist or is not a regular file (possibly a pipe?)") misleads
    about a file that plainly exists, so that one becomes "unknown format"."""
    text = (str(e).strip().splitlines() or [type(e).__name__])[-1]
    text = text.split("': ", 1)[-1].rstrip(".")
    if "not a regular file" in text or "does not exist" in text:
        return "unknown format or corrupt data"
    return text[:160]


@functools.lru_cache(maxsize=4)
def mel_filterbank(sr: int = SAMPLE_RATE, n_fft: int = WINDOW, n_mels: int = N_MELS,
                   fmin: float = FMIN, fmax: float = FMAX) -> np.ndarray:
    """Slaney mel filterbank as the recipe builds it: [n_mels, n_fft // 2 + 1] float64."""
    import librosa

    bank = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax,
                               dtype=np.float64)
    bank.setflags(write=False)  # shared by every caller through the cache.
    return bank


@functools.lru_cache(maxsize=4)
def _hamming_scaled(window: int) -> np.ndarray:
    """Symmetric Hamming window divided by sqrt(sum(w**2)) (scipy 'density' magnitude scaling)."""
    w = np.hamming(window)  # symmetric, as Kong's `np.hamming(window_size)`.
    w = w / np.sqrt(np.sum(w**2))
    w.setflags(write=False)
    return w


def magnitude_spectrogram(audio: np.ndarray, window: int = WINDOW, hop: int = HOP) -> np.ndarray:
    """scipy.signal.spectrogram(mode='magnitude') with the recipe's settings: [frames, 1025] f64.

    Frames start at 0, hop, 2*hop, ... and only whole windows are used (no centring, no padding),
    so frames = 1 + (len(audio) - window) // hop.
    """
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio [samples], got shape {audio.shape}")
    if audio.shape[0] < window:
        raise ValueError(f"audio has {audio.shape[0]} samples, fewer than one window ({window})")
    frames = np.lib.stride_tricks.sliding_window_view(audio, window)[::hop]
    return np.abs(np.fft.rfft(frames * _hamming_scaled(window), axis=-1))


def logmel(audio_32k_mono: np.ndarray) -> np.ndarray:
    """Recipe log-mel of 32 kHz mono audio: [frames, 64] float32 (311 frames for 10 s)."""
    mel = magnitude_spectrogram(audio_32k_mono) @ mel_filterbank().T
    return np.log(mel + LOG_OFFSET).astype(np.float32)
