"""data_prep.mixing: per-event SNR, placement, peak normalisation, silent input (the tracks come
from data_prep.render's worker code, on the shared tiny corpus's mixture spec)."""

import numpy as np
import pytest

from data_prep import mixing, render
from tests import fixtures
from tests.fixtures import rms
from twostep_jax.data import features as F


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    return fixtures.mixture_spec(tmp_path_factory)


@pytest.mark.parametrize("snr", [0, 10, 20])
def test_per_event_snr_measured_on_the_tracks(spec, snr):
    cache = render.EventCache()
    for mixture in spec.mixtures:
        unit_events, scene = render.mixture_tracks(spec, mixture, cache)
        assert rms(scene) == pytest.approx(1.0, rel=1e-9)  # scene at RMS 1 before the peak
        mixed = mixing.mix_at_snr(unit_events, scene, snr)
        for ev in mixture.events:
            start = int(round(ev.onset * F.SAMPLE_RATE))
            segment = mixed.events[start:start + mixing.event_samples(ev.onset, ev.offset)]
            measured = 20 * np.log10(rms(segment) / rms(mixed.scene))
            assert measured == pytest.approx(snr, abs=0.1), (mixture.mixture_name, ev)


def test_tracks_placement_peak_normalisation_and_mixture(spec):
    mixture = spec.mixtures[0]
    unit_events, scene = render.mixture_tracks(spec, mixture, render.EventCache())
    mixed = mixing.mix_at_snr(unit_events, scene, 10)
    assert mixed.events.shape == mixed.scene.shape == (F.CLIP_SAMPLES,)
    peak = max(np.max(np.abs(mixed.events)), np.max(np.abs(mixed.scene)))
    assert peak == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_array_equal(mixed.mixture, 0.5 * (mixed.events + mixed.scene))
    active = np.zeros(F.CLIP_SAMPLES, bool)
    for ev, start in zip(mixture.events, (16000, 96000, 176000)):
        n = mixing.event_samples(ev.onset, ev.offset)
        assert int(round(ev.onset * F.SAMPLE_RATE)) == start and n <= 64000
        assert np.count_nonzero(mixed.events[start:start + n]) > 0.99 * n
        active[start:start + n] = True
    assert not np.any(mixed.events[~active])  # silence before, between and after the events


def test_silent_event_and_scene_are_errors():
    with pytest.raises(F.AudioError, match="x.wav: event audio is silent"):
        mixing.unit_rms_segment(np.zeros(100), 10, "x.wav")
    with pytest.raises(F.AudioError, match="s.wav: scene audio is silent"):
        mixing.scene_track(np.zeros(100), "s.wav")
