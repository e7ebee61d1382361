"""The builtin corpus's 10 background scene types (10 s each), procedural with variation.

Beds of coloured noise with distinct spectra, mains hum, babble-like modulated noise, rain-like
clicks, passing-vehicle sweeps, HVAC drone, gusty wind with birds, distant music, and transient
clutter. Several contain event-like components (knocks, clicks, chirps, tones, voices), as real
city recordings do, so at low SNR a model must tell the target events from scene content.
Every renderer is `(rng, sr, n) -> [n] float64`; the recipe rescales scenes to RMS 1 anyway,
so only the balance of components inside a scene matters.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from data_prep import synth as S

SCENES: dict[str, Callable[[np.random.Generator, int, int], np.ndarray]] = {}


def _scene(name: str):
    def register(fn):
        SCENES[name] = fn
        return fn
    return register


def _unit(x: np.ndarray) -> np.ndarray:
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


def _drift(rng, n, sr, depth=0.3):
    return np.clip(1 + S.random_walk(rng, n, sr, 0.5, depth), 0.2, None)


@_scene("pink_noise_bed")
def _pink_noise_bed(rng, sr, n):
    return S.coloured_noise(rng, n, rng.uniform(0.8, 1.2)) * _drift(rng, n, sr)


@_scene("brown_noise_rumble")
def _brown_noise_rumble(rng, sr, n):
    bed = S.coloured_noise(rng, n, rng.uniform(1.6, 2.2))
    air = S.coloured_noise(rng, n, 1.0) * rng.uniform(0.05, 0.2)
    return (bed + air) * _drift(rng, n, sr)


@_scene("mains_hum_room")
def _mains_hum_room(rng, sr, n):
    f0 = rng.choice([50.0, 60.0]) * rng.uniform(0.998, 1.002)
    amps = S.tilt_amps(12, 1.0, rng, 8.0) * np.tile([1.0, 0.3], 6)  # odd harmonics dominate
    hum = _unit(S.harmonic_tone(rng, f0, n, sr, amps))
    room = S.coloured_noise(rng, n, 1.0)
    return hum + room * 10 ** (-rng.uniform(0, 12) / 20)


def _talker(rng, sr, n):
    """One voice-like stream: a broad formant band of noise gated by syllables."""
    voiced = S.resonator(rng.standard_normal(n), sr, rng.uniform(300, 2000), rng.uniform(1.5, 4))
    return _unit(voiced) * S.syllable_envelope(rng, n, sr, rng.uniform(3, 6))


@_scene("crowd_babble")
def _crowd_babble(rng, sr, n):
    talkers = sum(_talker(rng, sr, n) * rng.uniform(0.3, 1.0) for _ in range(rng.integers(3, 6)))
    return _unit(talkers) + 0.3 * S.coloured_noise(rng, n, 1.0)


@_scene("rain_on_surface")
def _rain_on_surface(rng, sr, n):
    drops = S.impulses(n, sr, S.poisson_times(rng, rng.uniform(200, 1500), n / sr))
    drops *= 1.0 + rng.pareto(2.5, n) * (drops != 0)
    ticks = S.band(drops, sr, rng.uniform(2000, 5000), None)
    hiss = S.band(rng.standard_normal(n), sr, 1000, None)
    return _unit(ticks) + rng.uniform(0.3, 1.0) * hiss


@_scene("passing_traffic")
def _passing_traffic(rng, sr, n):
    t = S.seconds(n, sr)
    bed = S.band(S.coloured_noise(rng, n, 1.5), sr, None, rng.uniform(400, 1200))
    out = _unit(bed) * rng.uniform(0.3, 0.7)
    for _ in range(rng.integers(1, 4)):
        center, width = rng.uniform(0, n / sr), rng.uniform(1.0, 2.5)
        swell = np.exp(-0.5 * ((t - center) / width) ** 2)
        f = rng.uniform(40, 90) * (1 + 0.08 * np.tanh(-(t - center) / width))  # doppler glide
        engine = S.harmonic_tone(rng, f, n, sr, S.tilt_amps(8, 0.9, rng, 5.0))
        tyres = S.band(rng.standard_normal(n), sr, 500, 3000)
        out += swell * (_unit(engine) + rng.uniform(0.5, 1.5) * _unit(tyres))
    return out


@_scene("transient_clutter")
def _transient_clutter(rng, sr, n):
    out = S.coloured_noise(rng, n, rng.uniform(0.8, 1.5))
    for t in S.poisson_times(rng, rng.uniform(0.5, 1.5), n / sr):
        kind = rng.integers(4)
        if kind == 0:  # knock / door
            s = S.decaying_ping(sr, rng.uniform(100, 600), rng.uniform(0.02, 0.08), rng=rng)
        elif kind == 1:  # click
            s = S.band(rng.standard_normal(int(0.003 * sr)), sr, 2000, None)
        elif kind == 2:  # short tone
            m = int(rng.uniform(0.05, 0.3) * sr)
            s = np.sin(2 * np.pi * rng.uniform(400, 3000) * S.seconds(m, sr)) * np.hanning(m)
        else:  # metallic clank
            s = S.decaying_ping(sr, rng.uniform(500, 2000), rng.uniform(0.05, 0.3),
                                ((1.0, 1.0), (2.7, 0.5)), rng)
        a = int(t * sr)
        k = min(len(s), n - a)
        out[a:a + k] += S.normalize_peak(s[:k]) * rng.uniform(1.0, 4.0)
    return out


@_scene("hvac_drone")
def _hvac_drone(rng, sr, n):
    air = S.band(rng.standard_normal(n), sr, rng.uniform(80, 200), rng.uniform(800, 2000))
    blade = rng.uniform(80, 300)
    fan = S.harmonic_tone(rng, blade, n, sr, S.tilt_amps(6, 1.5, rng, 6.0))
    am = 1 + 0.2 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * S.seconds(n, sr))
    return (_unit(air) + rng.uniform(0.2, 0.8) * _unit(fan)) * am


@_scene("windy_park")
def _windy_park(rng, sr, n):
    wind = S.band(S.coloured_noise(rng, n, 1.5), sr, None, rng.uniform(400, 1500))
    gust = np.clip(0.6 + S.random_walk(rng, n, sr, 0.8, 0.6), 0.05, None)
    out = _unit(wind) * gust
    for t in S.poisson_times(rng, rng.uniform(0.2, 1.0), n / sr):  # birds
        m = int(rng.uniform(0.05, 0.2) * sr)
        f = rng.uniform(2000, 6000) * np.linspace(1, rng.uniform(0.6, 1.4), m)
        chirp = np.sin(S.phase_from_freq(f, m, sr)) * np.hanning(m)
        a = int(t * sr)
        k = min(m, n - a)
        out[a:a + k] += chirp[:k] * rng.uniform(0.3, 1.5)
    return out


@_scene("distant_music")
def _distant_music(rng, sr, n):
    out = S.coloured_noise(rng, n, 1.0) * rng.uniform(0.2, 0.5)
    t = 0.0
    root = rng.uniform(150, 400)
    while t < n / sr:
        d = rng.uniform(0.2, 0.8)
        m = min(int(d * 1.6 * sr), n - int(t * sr))
        f = root * 2 ** (rng.integers(-5, 8) / 12)
        note = S.harmonic_tone(rng, f, m, sr, S.tilt_amps(6, 1.5)) * S.exp_decay(m, sr, d)
        a = int(t * sr)
        out[a:a + m] += note * rng.uniform(0.1, 0.35)
        t += d
    return S.band(out, sr, None, rng.uniform(2000, 5000))  # distance: highs absorbed


SCENE_LABELS = tuple(SCENES)
assert len(SCENE_LABELS) == 10


def synthesize_scene(label: str, rng: np.random.Generator, sr: int, seconds: float) -> np.ndarray:
    """One scene recording of type `label`: [int(seconds * sr)], peak 0.2-0.9."""
    n = int(round(seconds * sr))
    x = SCENES[label](rng, sr, n)
    return S.normalize_peak(x, rng.uniform(0.2, 0.9))
