"""The builtin corpus's 41 sound-event classes: procedural synthesis with within-class variation.

Each class is a synthesis family with randomised parameters (pitch, timbre/partials, envelope,
rate, duration, internal silences), so no two clips are alike and a model has to learn the
family, not a template. Names say honestly what the sound is. Deliberately confusable groups
(similar spectra or textures, different in one cue):
  low_harmonic_hum / engine_drone; mid_harmonic_drone / bright_sawtooth_buzz / odd_harmonic_reed;
  vibrato_flute_tone / tremolo_organ_tone; rising_chirp / falling_chirp; slow_click_train /
  metronome_ticks; irregular_crackle / typing_taps; metallic_ring / deep_gong; pulsed_beep /
  irregular_beeps; vowel_ah_voice / vowel_ee_voice; bird_like_trill / bubbling_blips.
Every renderer is `(rng, sr, n) -> [n] float64`; `synthesize_event` adds the shared touches
(duration draw, optional leading silence, a recording noise floor, a random peak level).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from data_prep import synth as S

Renderer = Callable[[np.random.Generator, int, int], np.ndarray]


@dataclasses.dataclass(frozen=True)
class EventClass:
    name: str
    family: str
    durations: tuple[float, float]  # seconds, drawn log-uniformly; overall range 0.3-6 s
    render: Renderer


EVENT_CLASSES: dict[str, EventClass] = {}


def _event(name: str, family: str, durations: tuple[float, float]):
    def register(render: Renderer) -> Renderer:
        assert name not in EVENT_CLASSES, name
        EVENT_CLASSES[name] = EventClass(name, family, durations, render)
        return render
    return register


def _vibrato(rng, n, sr, f0, rate=(4.5, 6.5), depth=(0.005, 0.02)):
    t = S.seconds(n, sr)
    return f0 * (1 + rng.uniform(*depth) * np.sin(2 * np.pi * rng.uniform(*rate) * t
                                                  + rng.uniform(0, 6.3)))


def _tone_env(rng, n, sr):
    return S.ar_envelope(n, sr, rng.uniform(0.01, 0.15), rng.uniform(0.05, 0.4))


# ---------------------------------------------------------------- sustained harmonic tones


@_event("low_harmonic_hum", "harmonic", (0.8, 6.0))
def _low_harmonic_hum(rng, sr, n):
    f0 = rng.uniform(55, 110)
    amps = S.tilt_amps(int(rng.integers(12, 26)), rng.uniform(0.8, 1.5), rng, 4.0)
    return S.harmonic_tone(rng, f0 * (1 + S.random_walk(rng, n, sr, 2, 0.003)), n, sr, amps) \
        * _tone_env(rng, n, sr)


@_event("engine_drone", "harmonic", (1.0, 6.0))
def _engine_drone(rng, sr, n):
    f0 = rng.uniform(30, 70) * (1 + S.random_walk(rng, n, sr, 3, 0.05))
    amps = S.tilt_amps(int(rng.integers(15, 30)), rng.uniform(0.5, 1.0), rng, 6.0)
    tone = S.harmonic_tone(rng, f0, n, sr, amps)
    firing = 1 + rng.uniform(0.2, 0.6) * np.sin(S.phase_from_freq(f0 / 2, n, sr))
    rumble = S.band(S.coloured_noise(rng, n, 1.0), sr, high=rng.uniform(300, 800))
    return (tone * firing + rng.uniform(0.3, 0.8) * rumble) * _tone_env(rng, n, sr)


@_event("mid_harmonic_drone", "harmonic", (0.8, 6.0))
def _mid_harmonic_drone(rng, sr, n):
    amps = S.tilt_amps(int(rng.integers(6, 14)), rng.uniform(1.2, 2.2), rng, 3.0)
    return S.harmonic_tone(rng, rng.uniform(160, 330), n, sr, amps) * _tone_env(rng, n, sr)


@_event("bright_sawtooth_buzz", "harmonic", (0.5, 4.0))
def _bright_sawtooth_buzz(rng, sr, n):
    amps = S.tilt_amps(int(rng.integers(25, 45)), rng.uniform(0.8, 1.1), rng, 2.0)
    f0 = _vibrato(rng, n, sr, rng.uniform(120, 300), depth=(0.0, 0.008))
    return S.harmonic_tone(rng, f0, n, sr, amps) * _tone_env(rng, n, sr)


@_event("odd_harmonic_reed", "harmonic", (0.5, 4.0))
def _odd_harmonic_reed(rng, sr, n):
    count = int(rng.integers(6, 14))
    amps = S.tilt_amps(count, rng.uniform(1.0, 1.5), rng, 3.0)
    f0 = _vibrato(rng, n, sr, rng.uniform(180, 450), depth=(0.0, 0.01))
    return S.harmonic_tone(rng, f0, n, sr, amps, harmonics=2 * np.arange(count) + 1) \
        * _tone_env(rng, n, sr)


@_event("high_whistle_tone", "harmonic", (0.4, 3.0))
def _high_whistle_tone(rng, sr, n):
    amps = S.tilt_amps(int(rng.integers(1, 4)), rng.uniform(1.5, 3.0))
    f0 = _vibrato(rng, n, sr, rng.uniform(1200, 2600), depth=(0.0, 0.015))
    breath = S.band(rng.standard_normal(n), sr, 2000, 8000) * rng.uniform(0.02, 0.1)
    return (S.harmonic_tone(rng, f0, n, sr, amps) + breath) * _tone_env(rng, n, sr)


@_event("vibrato_flute_tone", "harmonic", (0.5, 4.0))
def _vibrato_flute_tone(rng, sr, n):
    f_base = rng.uniform(450, 1000)
    f0 = _vibrato(rng, n, sr, f_base, depth=(0.01, 0.03))
    amps = S.tilt_amps(int(rng.integers(3, 7)), rng.uniform(2.0, 3.0), rng, 3.0)
    breath = S.band(rng.standard_normal(n), sr, f_base, 3 * f_base) * rng.uniform(0.05, 0.2)
    return (S.harmonic_tone(rng, f0, n, sr, amps) + breath) * _tone_env(rng, n, sr)


@_event("tremolo_organ_tone", "harmonic", (0.5, 4.0))
def _tremolo_organ_tone(rng, sr, n):
    amps = S.tilt_amps(int(rng.integers(4, 9)), rng.uniform(1.0, 2.0), rng, 4.0)
    tone = S.harmonic_tone(rng, rng.uniform(250, 600), n, sr, amps)
    trem = 1 - rng.uniform(0.4, 0.8) * (0.5 + 0.5 * np.sin(
        2 * np.pi * rng.uniform(5, 8) * S.seconds(n, sr)))
    return tone * trem * _tone_env(rng, n, sr)


@_event("beating_dual_tone", "harmonic", (0.8, 5.0))
def _beating_dual_tone(rng, sr, n):
    f = rng.uniform(600, 1500)
    beat = rng.uniform(2, 8)
    t = S.seconds(n, sr)
    x = np.sin(2 * np.pi * f * t) + rng.uniform(0.7, 1.0) * np.sin(2 * np.pi * (f + beat) * t + 1)
    return x * _tone_env(rng, n, sr)


# ---------------------------------------------------------------- sweeps and chirps


def _chirps(rng, sr, n, direction: float):
    """1-3 exponential sweeps by a factor 2-6 (up if direction > 0), with silent gaps."""
    out = np.zeros(n)
    count = int(rng.integers(1, 4))
    slot = n // count
    for i in range(count):
        m = int(slot * rng.uniform(0.55, 0.9))
        f_lo = rng.uniform(300, 1200)
        ratio = rng.uniform(2, 6)
        t = np.linspace(0, 1, m)
        f = f_lo * ratio ** (t if direction > 0 else 1 - t)
        tone = S.harmonic_tone(rng, f, m, sr, np.array([1.0, rng.uniform(0.0, 0.3)]))
        out[i * slot:i * slot + m] = tone * S.ar_envelope(m, sr, 0.01, 0.03)
    return out


@_event("rising_chirp", "sweep", (0.3, 2.0))
def _rising_chirp(rng, sr, n):
    return _chirps(rng, sr, n, +1)


@_event("falling_chirp", "sweep", (0.3, 2.0))
def _falling_chirp(rng, sr, n):
    return _chirps(rng, sr, n, -1)


@_event("siren_wail", "sweep", (2.0, 6.0))
def _siren_wail(rng, sr, n):
    t = S.seconds(n, sr)
    f = rng.uniform(600, 1200) * (1 + rng.uniform(0.2, 0.4) * np.sin(
        2 * np.pi * rng.uniform(0.3, 1.0) * t + rng.uniform(0, 6.3)))
    return S.harmonic_tone(rng, f, n, sr, S.tilt_amps(3, 1.5)) * _tone_env(rng, n, sr)


@_event("fast_warble", "sweep", (0.5, 3.0))
def _fast_warble(rng, sr, n):
    t = S.seconds(n, sr)
    f = rng.uniform(1500, 3000) * (1 + rng.uniform(0.05, 0.1) * np.sin(
        2 * np.pi * rng.uniform(12, 25) * t))
    return S.harmonic_tone(rng, f, n, sr, S.tilt_amps(2, 2.0)) * _tone_env(rng, n, sr)


@_event("rising_noise_sweep", "sweep", (0.5, 2.0))
def _rising_noise_sweep(rng, sr, n):
    noise = rng.standard_normal(n)
    f_lo, f_hi = rng.uniform(200, 600), rng.uniform(3000, 8000)
    blocks = 24  # piecewise band-pass whose centre glides up
    out = np.zeros(n)
    edges = np.linspace(0, n, blocks + 1).astype(int)
    for i in range(blocks):
        fc = f_lo * (f_hi / f_lo) ** (i / (blocks - 1))
        seg = S.band(noise[edges[i]:edges[i + 1]], sr, fc / 1.4, fc * 1.4)
        out[edges[i]:edges[i + 1]] = seg
    return out * S.ar_envelope(n, sr, rng.uniform(0.05, 0.3), rng.uniform(0.05, 0.2))


@_event("bird_like_trill", "sweep", (0.4, 2.5))
def _bird_like_trill(rng, sr, n):
    rate = rng.uniform(8, 15)
    m = int(rng.uniform(0.03, 0.08) * sr)
    t = np.linspace(0, 1, m)
    f = rng.uniform(2500, 5000) * (1 - rng.uniform(0.2, 0.4) * t)
    note = S.harmonic_tone(rng, f, m, sr, np.array([1.0])) * np.hanning(m)
    times = np.arange(0, n / sr - m / sr, 1 / rate) + rng.uniform(0, 0.01, 1)
    return S.place(n, sr, note, times, rng.uniform(0.5, 1.0, len(times)))


# ---------------------------------------------------------------- noises


@_event("low_noise_rumble", "noise", (1.0, 6.0))
def _low_noise_rumble(rng, sr, n):
    x = S.band(S.coloured_noise(rng, n, 2.0), sr, 20, rng.uniform(150, 400), order=4)
    return x * (1 + S.random_walk(rng, n, sr, 1.5, 0.5)) * _tone_env(rng, n, sr)


@_event("mid_band_hiss", "noise", (0.5, 5.0))
def _mid_band_hiss(rng, sr, n):
    fc = rng.uniform(900, 2200)
    return S.band(rng.standard_normal(n), sr, fc / 1.5, fc * 1.5, order=3) * _tone_env(rng, n, sr)


@_event("high_band_hiss", "noise", (0.5, 5.0))
def _high_band_hiss(rng, sr, n):
    fc = rng.uniform(5000, 9000)
    return S.band(rng.standard_normal(n), sr, fc / 1.5, fc * 1.5, order=3) * _tone_env(rng, n, sr)


@_event("noise_burst_train", "noise", (0.5, 3.0))
def _noise_burst_train(rng, sr, n):
    x = S.band(rng.standard_normal(n), sr, rng.uniform(1500, 3000), None)
    gate = np.zeros(n)
    t = rng.uniform(0, 0.05)
    while t < n / sr:
        on = rng.uniform(0.05, 0.2)
        a, b = int(t * sr), int(min(t + on, n / sr) * sr)
        gate[a:b] = S.ar_envelope(b - a, sr, 0.005, 0.03) * rng.uniform(0.5, 1.0)
        t += on + rng.uniform(0.05, 0.3)
    return x * gate


@_event("breathy_wind_gust", "noise", (1.5, 6.0))
def _breathy_wind_gust(rng, sr, n):
    noise = rng.standard_normal(n)
    lo = S.band(noise, sr, 200, 600)
    hi = S.band(noise, sr, 800, 2000)
    mix = 0.5 + 0.5 * np.tanh(3 * S.random_walk(rng, n, sr, 1.0, 1.0))
    level = np.clip(0.6 + S.random_walk(rng, n, sr, 1.2, 0.6), 0.05, None)
    return (lo * (1 - mix) + hi * mix) * level * _tone_env(rng, n, sr)


# ---------------------------------------------------------------- impulse trains


def _click(sr, rng, high=3000.0):
    m = int(0.002 * sr)
    return S.band(rng.standard_normal(m) * np.hanning(m), sr, high, None)


@_event("slow_click_train", "impulses", (0.8, 4.0))
def _slow_click_train(rng, sr, n):
    rate = rng.uniform(3, 8)
    times = np.arange(rng.uniform(0, 0.05), n / sr, 1 / rate) + rng.normal(0, 0.003, 1)
    return S.place(n, sr, _click(sr, rng, rng.uniform(1500, 4000)), times)


@_event("fast_click_buzz", "impulses", (0.4, 2.5))
def _fast_click_buzz(rng, sr, n):
    rate = rng.uniform(25, 70)
    times = np.arange(0, n / sr, 1 / rate)
    times = times + rng.normal(0, 0.05 / rate, len(times))
    return S.place(n, sr, _click(sr, rng, rng.uniform(500, 2000)), times) \
        * _tone_env(rng, n, sr)


@_event("irregular_crackle", "impulses", (0.5, 4.0))
def _irregular_crackle(rng, sr, n):
    times = S.poisson_times(rng, rng.uniform(20, 80), n / sr)
    amps = rng.pareto(2.0, len(times)) + 0.2
    x = S.place(n, sr, _click(sr, rng, 800), times, amps)
    return S.band(x, sr, 1000, 6000)


@_event("typing_taps", "impulses", (0.8, 4.0))
def _typing_taps(rng, sr, n):
    times = np.cumsum(rng.uniform(0.06, 0.22, int(n / sr * 12) + 1))
    times = times[times < n / sr - 0.02]
    out = np.zeros(n)
    for t in times:
        tap = S.decaying_ping(sr, rng.uniform(2000, 4000), rng.uniform(0.002, 0.006),
                              ((1.0, 1.0), (1.7, 0.5)), rng)
        click = _click(sr, rng)
        k = min(len(click), len(tap))
        tap[:k] += click[:k]  # the key's contact click on top of its resonance
        a = int(t * sr)
        m = min(len(tap), n - a)
        out[a:a + m] += tap[:m] * rng.uniform(0.4, 1.0)
    return out


@_event("metronome_ticks", "impulses", (0.8, 4.0))
def _metronome_ticks(rng, sr, n):
    rate = rng.uniform(1.5, 4.0)
    tick = S.decaying_ping(sr, rng.uniform(1500, 3000), rng.uniform(0.004, 0.012),
                           ((1.0, 1.0), (2.3, 0.4)), rng)
    times = np.arange(rng.uniform(0, 0.1), n / sr, 1 / rate)
    accents = np.where(np.arange(len(times)) % int(rng.integers(2, 5)) == 0, 1.0, 0.6)
    return S.place(n, sr, tick, times, accents)


# ---------------------------------------------------------------- struck / percussive


def _hits(rng, sr, n, sound_fn, count_range, gap_range):
    out = np.zeros(n)
    t = rng.uniform(0, 0.05)
    for _ in range(int(rng.integers(*count_range))):
        s = sound_fn()
        a = int(t * sr)
        if a >= n:
            break
        m = min(len(s), n - a)
        out[a:a + m] += s[:m] * rng.uniform(0.6, 1.0)
        t += rng.uniform(*gap_range)
    return out


@_event("low_thump", "percussive", (0.3, 1.5))
def _low_thump(rng, sr, n):
    def thump():
        m = int(0.6 * sr)
        t = S.seconds(m, sr)
        f = rng.uniform(45, 110) * (1 + 0.5 * np.exp(-t / 0.03))
        return np.sin(S.phase_from_freq(f, m, sr)) * np.exp(-t / rng.uniform(0.08, 0.3))
    return _hits(rng, sr, n, thump, (1, 4), (0.15, 0.5))


@_event("noise_snap", "percussive", (0.3, 1.5))
def _noise_snap(rng, sr, n):
    def snap():
        m = int(0.4 * sr)
        t = S.seconds(m, sr)
        noise = S.band(rng.standard_normal(m), sr, rng.uniform(1000, 3000), None)
        body = np.sin(2 * np.pi * rng.uniform(150, 250) * t)
        return (noise * np.exp(-t / rng.uniform(0.04, 0.15))
                + rng.uniform(0.2, 0.6) * body * np.exp(-t / 0.05))
    return _hits(rng, sr, n, snap, (1, 5), (0.12, 0.35))


_BELL_RATIOS = np.array([1.0, 2.76, 5.40, 8.93])


@_event("metallic_ring", "percussive", (1.0, 5.0))
def _metallic_ring(rng, sr, n):
    ratios = _BELL_RATIOS * rng.uniform(0.97, 1.03, 4)
    partials = tuple(zip(ratios, rng.uniform(0.3, 1.0, 4)))
    ring = S.decaying_ping(sr, rng.uniform(300, 900), rng.uniform(0.5, 2.0), partials, rng)
    return _hits(rng, sr, n, lambda: ring, (1, 3), (0.6, 1.5))


@_event("deep_gong", "percussive", (2.0, 6.0))
def _deep_gong(rng, sr, n):
    f = rng.uniform(80, 200)
    partials = tuple((r * rng.uniform(0.98, 1.02), a) for r, a in
                     zip([1.0, 1.52, 2.03, 2.74, 3.51], rng.uniform(0.3, 1.0, 5)))
    x = S.decaying_ping(sr, f, rng.uniform(1.5, 4.0), partials, rng, max_samples=n)
    x = np.pad(x, (0, n - len(x)))
    return x * (1 + 0.3 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * S.seconds(n, sr)))


@_event("glass_ping", "percussive", (0.3, 1.5))
def _glass_ping(rng, sr, n):
    def ping():
        return S.decaying_ping(sr, rng.uniform(2000, 5000), rng.uniform(0.05, 0.3),
                               ((1.0, 1.0), (2.32, 0.4), (4.25, 0.2)), rng)
    return _hits(rng, sr, n, ping, (1, 4), (0.1, 0.4))


@_event("wooden_knock", "percussive", (0.3, 2.0))
def _wooden_knock(rng, sr, n):
    f1, f2 = rng.uniform(400, 800), rng.uniform(900, 1400)

    def knock():
        m = int(0.12 * sr)
        exc = np.zeros(m)
        exc[:int(0.001 * sr)] = rng.standard_normal(int(0.001 * sr))
        return (S.resonator(exc, sr, f1, rng.uniform(8, 20))
                + 0.6 * S.resonator(exc, sr, f2, rng.uniform(8, 20)))
    return _hits(rng, sr, n, knock, (1, 5), (0.1, 0.3))


@_event("plucked_string", "percussive", (0.5, 4.0))
def _plucked_string(rng, sr, n):
    from scipy import signal

    f0 = rng.uniform(100, 500)
    period = int(sr / f0)
    g = rng.uniform(0.990, 0.998)
    a = np.zeros(period + 2)
    a[0], a[period], a[period + 1] = 1.0, -g / 2, -g / 2  # Karplus-Strong loop filter
    exc = np.zeros(n)
    exc[:period] = rng.uniform(-1, 1, period)
    return signal.lfilter([1.0], a, exc)


# ---------------------------------------------------------------- beeps


def _beep_tone(rng, sr, n, f):
    return S.harmonic_tone(rng, f, n, sr, np.array([1.0, 0.0, rng.uniform(0.0, 0.3)]))


@_event("pulsed_beep", "beep", (0.5, 4.0))
def _pulsed_beep(rng, sr, n):
    on, off = rng.uniform(0.08, 0.25), rng.uniform(0.08, 0.25)
    t = S.seconds(n, sr)
    gate = ((t % (on + off)) < on).astype(float)
    gate = S.smooth(gate, int(0.002 * sr))  # 2 ms ramps: no clicks at beep edges
    return _beep_tone(rng, sr, n, rng.uniform(800, 2000)) * gate


@_event("irregular_beeps", "beep", (0.8, 4.0))
def _irregular_beeps(rng, sr, n):
    gate = np.zeros(n)
    t = rng.uniform(0, 0.05)
    while t < n / sr:
        on = rng.choice([0.06, 0.18]) * rng.uniform(0.8, 1.2)
        a, b = int(t * sr), int(min(t + on, n / sr) * sr)
        gate[a:b] = 1.0
        t += on + rng.choice([0.06, 0.18, 0.4]) * rng.uniform(0.8, 1.2)
    gate = S.smooth(gate, int(0.002 * sr))  # 2 ms ramps: no clicks at beep edges
    return _beep_tone(rng, sr, n, rng.uniform(500, 1200)) * gate


@_event("dual_tone_ring", "beep", (1.0, 5.0))
def _dual_tone_ring(rng, sr, n):
    f1 = rng.uniform(400, 1000)
    t = S.seconds(n, sr)
    tones = np.sin(2 * np.pi * f1 * t) + np.sin(2 * np.pi * f1 * rng.uniform(1.2, 1.35) * t)
    warble = 0.5 + 0.5 * np.sign(np.sin(2 * np.pi * rng.uniform(15, 25) * t))
    on, off = rng.uniform(0.4, 1.0), rng.uniform(0.2, 0.6)
    gate = ((t % (on + off)) < on).astype(float)
    return tones * (0.3 + 0.7 * warble) * gate


# ---------------------------------------------------------------- textures


@_event("jingling_rattle", "texture", (0.5, 3.0))
def _jingling_rattle(rng, sr, n):
    times = S.poisson_times(rng, rng.uniform(30, 120), n / sr)
    out = np.zeros(n)
    for t in times:
        p = S.decaying_ping(sr, rng.uniform(3000, 9000), rng.uniform(0.005, 0.03),
                            ((1.0, 1.0), (1.48, 0.5)), rng)
        a = int(t * sr)
        m = min(len(p), n - a)
        out[a:a + m] += p[:m] * rng.uniform(0.2, 1.0)
    shake = 0.4 + 0.6 * np.abs(np.sin(np.pi * rng.uniform(2, 6) * S.seconds(n, sr)))
    return out * shake


@_event("rough_scrape", "texture", (0.5, 4.0))
def _rough_scrape(rng, sr, n):
    fc = rng.uniform(1000, 4000)
    noise = S.band(rng.standard_normal(n), sr, fc / 2, fc * 2)
    grain = (S.phase_from_freq(rng.uniform(30, 90), n, sr) / (2 * np.pi)) % 1.0
    strokes = np.zeros(n)
    t = 0.0
    while t < n / sr:
        d = rng.uniform(0.2, 0.6)
        a, b = int(t * sr), int(min(t + d, n / sr) * sr)
        strokes[a:b] = np.hanning(b - a) if b - a > 2 else 0
        t += d + rng.uniform(0.02, 0.2)
    return noise * (0.3 + grain) * strokes


@_event("bubbling_blips", "texture", (0.5, 4.0))
def _bubbling_blips(rng, sr, n):
    times = S.poisson_times(rng, rng.uniform(5, 20), n / sr)
    out = np.zeros(n)
    for t in times:
        m = int(rng.uniform(0.02, 0.06) * sr)
        f = rng.uniform(300, 1500) * np.linspace(1, rng.uniform(1.5, 2.5), m)
        blip = np.sin(S.phase_from_freq(f, m, sr)) * np.hanning(m)
        a = int(t * sr)
        k = min(m, n - a)
        out[a:a + k] += blip[:k] * rng.uniform(0.4, 1.0)
    return out


# ---------------------------------------------------------------- voice-like


def _vowel(rng, sr, n, formants, f0_range):
    f0 = _vibrato(rng, n, sr, rng.uniform(*f0_range), rate=(4, 6), depth=(0.01, 0.03))
    pulses = np.diff(np.floor(S.phase_from_freq(f0, n, sr) / (2 * np.pi)), prepend=0.0)
    source = S.band(pulses, sr, None, 4000) + 0.05 * rng.standard_normal(n)
    out = np.zeros(n)
    for (lo, hi), gain in zip(formants, (1.0, 0.6, 0.3)):
        out += gain * S.resonator(source, sr, rng.uniform(lo, hi), rng.uniform(6, 12))
    return out


@_event("vowel_ah_voice", "voice", (0.5, 3.0))
def _vowel_ah_voice(rng, sr, n):
    return _vowel(rng, sr, n, ((600, 850), (1000, 1300), (2400, 2800)), (90, 250)) \
        * _tone_env(rng, n, sr)


@_event("vowel_ee_voice", "voice", (0.5, 3.0))
def _vowel_ee_voice(rng, sr, n):
    return _vowel(rng, sr, n, ((250, 350), (2000, 2500), (2900, 3300)), (90, 250)) \
        * _tone_env(rng, n, sr)


@_event("staccato_voice_bursts", "voice", (0.8, 4.0))
def _staccato_voice_bursts(rng, sr, n):
    voice = _vowel(rng, sr, n, ((500, 800), (1100, 1700), (2400, 2900)), (150, 350))
    breath = S.band(rng.standard_normal(n), sr, 500, 4000) * 0.3
    rate = rng.uniform(4, 6)
    syll = np.clip(np.sin(2 * np.pi * rate * S.seconds(n, sr)), 0, None) ** 2
    return (voice + breath) * syll * S.ar_envelope(n, sr, 0.02, rng.uniform(0.2, 0.6))


CLASS_NAMES = tuple(sorted(EVENT_CLASSES))
assert len(CLASS_NAMES) == 41, len(CLASS_NAMES)


def synthesize_event(name: str, rng: np.random.Generator, sr: int) -> np.ndarray:
    """One clip of class `name` at `sr`: duration drawn from the class range, optional short
    leading silence, a noise floor 40-60 dB down (like a real recording), peak 0.3-0.95: [n]."""
    cls = EVENT_CLASSES[name]
    duration = S.loguniform(rng, *cls.durations)
    n = max(int(duration * sr), int(0.3 * sr))
    x = cls.render(rng, sr, n)[:n]
    x = S.normalize_peak(x)
    if rng.random() < 0.25:  # some clips start after a short silence, as recordings do
        lead = int(rng.uniform(0.02, 0.15) * sr)
        x = np.concatenate([np.zeros(lead), x[:n - lead]])
    floor = S.coloured_noise(rng, n, rng.uniform(0.0, 1.5)) * 10 ** (-rng.uniform(40, 60) / 20)
    return S.normalize_peak(x + floor, rng.uniform(0.3, 0.95))
