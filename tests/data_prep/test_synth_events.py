"""data_prep.synth_events: the builtin corpus's 41 classes and their synthesis."""

import numpy as np
import pytest

from data_prep import synth_events, synth_scenes
from tests.fixtures import rms
from twostep_jax.data import features as F


def test_builtin_classes_are_41_honest_names():
    names = synth_events.CLASS_NAMES
    assert len(names) == 41 and list(names) == sorted(names) and len(set(names)) == 41
    assert not set(names) & set(F.FSD_CLASS_NAMES)
    durations = [c.durations for c in synth_events.EVENT_CLASSES.values()]
    assert min(d[0] for d in durations) >= 0.3 and max(d[1] for d in durations) <= 6.0
    assert len(synth_scenes.SCENE_LABELS) == 10


@pytest.mark.parametrize("name", synth_events.CLASS_NAMES)
def test_every_builtin_class_synthesises_varied_clips(name):
    clips = [synth_events.synthesize_event(name, np.random.default_rng([7, i]), 44100)
             for i in range(3)]
    again = synth_events.synthesize_event(name, np.random.default_rng([7, 0]), 44100)
    np.testing.assert_array_equal(clips[0], again)  # a pure function of its seed
    for x in clips:
        assert 0.3 <= x.size / 44100 <= 6.0 and np.all(np.isfinite(x))
        assert 0.3 - 1e-9 <= np.max(np.abs(x)) <= 0.95 + 1e-9 and rms(x) > 1e-3
    assert len({x.size for x in clips}) > 1 or not np.allclose(clips[0], clips[1])
