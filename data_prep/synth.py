"""Signal primitives for the builtin procedural corpus (numpy/scipy, float64 mono).

Everything takes an explicit `np.random.Generator`, so a sound is a pure function of its seed.
Filters are second-order sections (`scipy.signal.sosfilt`), cheap on 10 s signals.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import fft as scipy_fft
from scipy import signal


def loguniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def seconds(n: int, sr: int) -> np.ndarray:
    return np.arange(n) / sr


def normalize_peak(x: np.ndarray, peak: float = 1.0) -> np.ndarray:
    m = float(np.max(np.abs(x))) if x.size else 0.0
    return x * (peak / m) if m > 0 else x


def ar_envelope(n: int, sr: int, attack: float, release: float) -> np.ndarray:
    """Linear attack, flat, linear release (seconds, clipped to fit n): [n]."""
    env = np.ones(n)
    a = min(int(attack * sr), n // 2)
    r = min(int(release * sr), n - a)
    if a > 0:
        env[:a] = np.linspace(0.0, 1.0, a, endpoint=False)
    if r > 0:
        env[n - r:] = np.linspace(1.0, 0.0, r)
    return env


def exp_decay(n: int, sr: int, tau: float) -> np.ndarray:
    return np.exp(-seconds(n, sr) / tau)


def phase_from_freq(freq: np.ndarray | float, n: int, sr: int) -> np.ndarray:
    """Instantaneous phase (radians) of a frequency track in Hz: [n]."""
    f = np.broadcast_to(np.asarray(freq, dtype=np.float64), (n,))
    return 2.0 * np.pi * np.cumsum(f) / sr


_TABLE_SIZE = 4096


def harmonic_tone(rng: np.random.Generator, freq: np.ndarray | float, n: int, sr: int,
                  amps: np.ndarray, harmonics: np.ndarray | None = None) -> np.ndarray:
    """Sum of partials k * f0 (k from `harmonics`, default 1..len(amps)) with random phases.

    Partials whose (maximum) frequency reaches 0.45 * sr are dropped (no aliasing). One period
    of the waveform is tabulated (4096 points) and read at the running phase with linear
    interpolation: cost independent of the number of partials, error below -70 dB.
    """
    harmonics = np.arange(1, len(amps) + 1) if harmonics is None else np.asarray(harmonics)
    keep = harmonics * float(np.max(freq)) < 0.45 * sr
    k, a = harmonics[keep], np.asarray(amps, dtype=np.float64)[:len(harmonics)][keep]
    theta = 2.0 * np.pi * np.arange(_TABLE_SIZE + 1) / _TABLE_SIZE
    offsets = rng.uniform(0, 2 * np.pi, len(k))
    table = np.sin(np.outer(theta, k) + offsets) @ a if len(k) else np.zeros(theta.size)
    position = np.mod(phase_from_freq(freq, n, sr), 2.0 * np.pi) * (_TABLE_SIZE / (2.0 * np.pi))
    return np.interp(position, np.arange(_TABLE_SIZE + 1), table)


def tilt_amps(count: int, tilt: float, rng: np.random.Generator | None = None,
              jitter_db: float = 0.0) -> np.ndarray:
    """Partial amplitudes k^-tilt, optionally with random +-jitter_db per partial: [count]."""
    amps = np.arange(1, count + 1, dtype=np.float64) ** -tilt
    if rng is not None and jitter_db > 0:
        amps *= 10 ** (rng.uniform(-jitter_db, jitter_db, count) / 20)
    return amps


def coloured_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Noise with power spectrum ~ 1/f^exponent (0 white, 1 pink, 2 brown), unit RMS: [n].

    Shaped in the frequency domain in float32 (half the cost of float64; plenty for noise)."""
    spec = scipy_fft.rfft(rng.standard_normal(n, dtype=np.float32))
    f = np.arange(spec.size, dtype=np.float32)
    f[0] = 1.0
    spec *= f ** np.float32(-exponent / 2.0)
    spec[0] = 0.0
    x = scipy_fft.irfft(spec, n).astype(np.float64)
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


@functools.lru_cache(maxsize=4096)
def _butter(order: int, low: float | None, high: float | None, sr: int) -> np.ndarray:
    nyq = sr / 2.0
    if low is not None and high is not None:
        return signal.butter(order, [low / nyq, high / nyq], btype="bandpass", output="sos")
    if low is not None:
        return signal.butter(order, low / nyq, btype="highpass", output="sos")
    return signal.butter(order, high / nyq, btype="lowpass", output="sos")


def _clip_hz(f: float | None, sr: int) -> float | None:
    return None if f is None else float(np.clip(f, 10.0, 0.45 * sr))


def band(x: np.ndarray, sr: int, low: float | None = None, high: float | None = None,
         order: int = 2) -> np.ndarray:
    """Butterworth band/high/low-pass (None = open edge); cutoffs rounded for the filter cache."""
    low, high = _clip_hz(low, sr), _clip_hz(high, sr)
    if low is not None and high is not None and high <= low * 1.05:
        high = low * 1.05
    key = lambda f: None if f is None else float(f"{f:.3g}")  # noqa: E731
    return signal.sosfilt(_butter(order, key(low), key(high), sr), x)


def resonator(x: np.ndarray, sr: int, freq: float, q: float) -> np.ndarray:
    """Two-pole resonant band-pass (peak gain ~1) at `freq` Hz with quality factor `q`."""
    freq = float(np.clip(freq, 20.0, 0.45 * sr))
    b, a = signal.iirpeak(freq, q, fs=sr)
    return signal.lfilter(b, a, x)


def impulses(n: int, sr: int, times: np.ndarray, amps: np.ndarray | float = 1.0) -> np.ndarray:
    """Unit impulses at `times` (s) scaled by `amps`: [n]."""
    x = np.zeros(n)
    idx = (np.asarray(times) * sr).astype(np.int64)
    keep = (idx >= 0) & (idx < n)
    np.add.at(x, idx[keep], np.broadcast_to(np.asarray(amps, np.float64), idx.shape)[keep])
    return x


def decaying_ping(sr: int, freq: float, tau: float, partials=((1.0, 1.0),),
                  rng: np.random.Generator | None = None,
                  max_samples: int | None = None) -> np.ndarray:
    """A struck sound: sum of exp-decaying sines (ratio, amp) over ~6 tau: [m]."""
    m = max(int(6 * tau * sr), 8)
    if max_samples is not None:
        m = min(m, max_samples)
    t = seconds(m, sr)
    out = np.zeros(m)
    for ratio, amp in partials:
        f = freq * ratio
        if f >= 0.45 * sr:
            continue
        ph = 0.0 if rng is None else rng.uniform(0, 2 * np.pi)
        out += amp * np.sin(2 * np.pi * f * t + ph) * np.exp(-t / tau * (1 + 0.3 * (ratio - 1)))
    return out


def place(n: int, sr: int, sound: np.ndarray, times: np.ndarray,
          amps: np.ndarray | float = 1.0) -> np.ndarray:
    """Copies of `sound` started at `times` (s), scaled by `amps`, summed into [n]."""
    return signal.fftconvolve(impulses(n, sr, times, amps), sound)[:n]


def poisson_times(rng: np.random.Generator, rate: float, duration: float) -> np.ndarray:
    count = rng.poisson(rate * duration)
    return np.sort(rng.uniform(0.0, duration, count))


_CONTROL_RATE = 1000  # Hz: envelopes that change over tens of ms are built at this rate


def syllable_envelope(rng: np.random.Generator, n: int, sr: int, rate: float,
                      smooth_s: float = 0.04) -> np.ndarray:
    """Random on/off segments at ~`rate` per second, smoothed: values in [0, 1], [n]."""
    m = int(np.ceil(n / sr * _CONTROL_RATE)) + 1
    env = np.zeros(m)
    t = 0.0
    dur = n / sr
    while t < dur:
        on = rng.uniform(0.4, 1.2) / rate
        a, b = int(t * _CONTROL_RATE), int(min(t + on, dur) * _CONTROL_RATE)
        env[a:b] = rng.uniform(0.4, 1.0)
        t += on + rng.exponential(0.6 / rate)
    env = smooth(env, max(int(smooth_s * _CONTROL_RATE), 1))
    return np.interp(np.arange(n) * (_CONTROL_RATE / sr), np.arange(m), env)


def smooth(x: np.ndarray, half_width: int) -> np.ndarray:
    """Moving average of width 2 * half_width + 1 applied twice (a triangular kernel, unit DC
    gain), in O(n) whatever the width: [n]."""
    from scipy.ndimage import uniform_filter1d

    size = 2 * half_width + 1
    return uniform_filter1d(uniform_filter1d(x, size, mode="nearest"), size, mode="nearest")


def random_walk(rng: np.random.Generator, n: int, sr: int, rate_hz: float,
                depth: float) -> np.ndarray:
    """Smooth random fluctuation around 0 (control-rate noise interpolated): [n]."""
    points = max(int(n / sr * rate_hz) + 2, 2)
    ctrl = rng.uniform(-depth, depth, points)
    return np.interp(np.linspace(0, points - 1, n), np.arange(points), ctrl)
