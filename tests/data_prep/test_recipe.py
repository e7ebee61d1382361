"""data_prep.recipe, Kong's recipe (ref §2.2-2.3): folds, the mixture specification and its
errors (too few clips or scenes, unusable audio files)."""

import shutil

import numpy as np
import pytest

from data_prep import layouts, recipe
from data_prep.errors import DataPrepError
from tests import fixtures
from twostep_jax.data.features import FSD_CLASS_NAMES as CLASS_NAMES


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    events_dir, scenes_dir = fixtures.corpus(tmp_path_factory)
    return (layouts.read_event_corpus(events_dir, CLASS_NAMES),
            layouts.read_scene_corpus(scenes_dir))


# ------------------------------------------------------------------ folds and repetition


def test_folds_are_kong_permutation_mod_4():
    n = 9473
    folds = recipe.assign_folds(n)
    order = np.random.RandomState(1234).permutation(n)  # = shuffle(arange(n)) with that seed
    for position in (0, 1, 2, 3, 4, 5000, n - 1):
        assert folds[order[position]] == position % 4 + 1
    assert np.bincount(folds)[1:].tolist() == [2369, 2368, 2368, 2368]


def kong_repeat_array(array, max_len, random_state):
    """Kong's `repeat_array`, behaviour as described in ref §2.3 (list of one aliased array)."""
    repeats_num = max_len // len(array) + 1
    repeated = []
    for _ in range(repeats_num):
        random_state.shuffle(array)
        repeated.append(array)
    return np.concatenate(repeated, axis=0)[:max_len]


def test_faithful_order_reproduces_kongs_aliasing_quirk():
    items = np.arange(7)
    got = recipe.repeat_array(items, 30, np.random.RandomState(5), "faithful")
    want = kong_repeat_array(np.arange(7), 30, np.random.RandomState(5))
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(items, np.arange(7))  # input untouched
    # A single permutation repeated: period 7.
    np.testing.assert_array_equal(got[7:], got[:-7])


def test_shuffled_order_uses_fresh_permutations_and_same_rng_draws():
    rng_a, rng_b = np.random.RandomState(5), np.random.RandomState(5)
    faithful = recipe.repeat_array(np.arange(7), 30, rng_a, "faithful")
    shuffled = recipe.repeat_array(np.arange(7), 30, rng_b, "shuffled")
    # 30 // 7 + 1 = 5 successive in-place shuffles of one array.
    work, states = np.arange(7), []
    ref = np.random.RandomState(5)
    for _ in range(5):
        ref.shuffle(work)
        states.append(work.copy())
    np.testing.assert_array_equal(shuffled, np.concatenate(states)[:30])  # each one used
    np.testing.assert_array_equal(faithful, np.tile(states[-1], 5)[:30])  # only the last
    assert len({tuple(b) for b in states}) > 1
    assert rng_a.randint(1 << 30) == rng_b.randint(1 << 30)  # RNG consumed identically


# ------------------------------------------------------------------ mixture specification


def test_spec_follows_the_recipe(corpora):
    events, scenes = corpora
    spec = recipe.create_mixture_spec(events, scenes, CLASS_NAMES, mixtures_per_fold=2)
    folds = recipe.assign_folds(len(events.clips))
    by_name = {c.fname: c for c in events.clips}
    durations = {r[0]: r[3] for r in fixtures.event_rows()}
    assert [m.mixture_name for m in spec.mixtures] == [f"{k:05d}.wav" for k in range(8)]
    assert [m.fold for m in spec.mixtures] == [1, 1, 2, 2, 3, 3, 4, 4]
    for m in spec.mixtures:
        assert [e.onset for e in m.events] == [0.5, 3.0, 5.5]
        for e in m.events:
            clip = by_name[e.event_audio_name]
            assert clip.manually_verified and folds[clip.row] == m.fold
            assert e.event_label == clip.label
            assert e.offset - e.onset == pytest.approx(min(durations[clip.fname], 2.0), abs=1e-4)
            assert e.offset - e.onset <= 2.0
    # Scene k of the once-shuffled meta.csv order, all distinct.
    order = np.arange(len(scenes.clips))
    np.random.RandomState(1234).shuffle(order)
    assert [m.scene_audio_name for m in spec.mixtures] == [
        scenes.clips[i].name for i in order[:8]]


def test_spec_event_sequence_is_the_faithful_repetition(corpora):
    events, scenes = corpora
    spec = recipe.create_mixture_spec(events, scenes, CLASS_NAMES, mixtures_per_fold=2)
    folds = recipe.assign_folds(len(events.clips))
    rng = np.random.RandomState(1234)
    rng.shuffle(np.arange(len(scenes.clips)))  # the scene shuffle comes first
    for fold in (1, 2, 3, 4):
        verified = np.array([c.row for c in events.clips
                             if c.manually_verified and folds[c.row] == fold])
        seq = kong_repeat_array(verified.copy(), 6, rng)
        got = [e.event_audio_name for m in spec.fold_mixtures(fold) for e in m.events]
        assert got == [events.clips[r].fname for r in seq]


def test_spec_orders_share_scenes_and_differ_in_events(corpora):
    events, scenes = corpora
    faithful = recipe.create_mixture_spec(events, scenes, CLASS_NAMES, 2, "faithful")
    shuffled = recipe.create_mixture_spec(events, scenes, CLASS_NAMES, 2, "shuffled")
    assert [m.scene_audio_name for m in faithful.mixtures] == [
        m.scene_audio_name for m in shuffled.mixtures]
    assert faithful.fingerprint != shuffled.fingerprint


def test_spec_json_round_trip_and_stable_fingerprint(corpora, tmp_path):
    events, scenes = corpora
    spec = recipe.create_mixture_spec(events, scenes, CLASS_NAMES, mixtures_per_fold=2)
    spec.save(tmp_path / "spec.json")
    again = recipe.MixtureSpec.load(tmp_path / "spec.json")
    assert again == spec and again.fingerprint == spec.fingerprint
    assert recipe.create_mixture_spec(events, scenes, CLASS_NAMES, 2).fingerprint == \
        spec.fingerprint


def test_fold_table_lists_every_row_with_its_fold(corpora, tmp_path):
    events, _ = corpora
    recipe.write_fold_table(events, tmp_path / "folds.csv")
    lines = (tmp_path / "folds.csv").read_text().splitlines()
    assert lines[0] == "index,fname,label,manually_verified,fold"
    assert len(lines) == len(events.clips) + 1
    folds = recipe.assign_folds(len(events.clips))
    assert [int(line.split(",")[-1]) for line in lines[1:]] == folds.tolist()


# ------------------------------------------------------------------ bad input


def test_too_few_verified_clips(tmp_path, corpora):
    rows = [(f, label, 0 if i % 2 else v, d)
            for i, (f, label, v, d) in enumerate(fixtures.event_rows(8))]
    events = layouts.read_event_corpus(fixtures.small_fsd(tmp_path, rows), CLASS_NAMES)
    with pytest.raises(DataPrepError, match=r"train\.csv: fold \d has \d manually verified"):
        recipe.create_mixture_spec(events, corpora[1], CLASS_NAMES, mixtures_per_fold=1)


def test_too_few_scenes(corpora):
    events, scenes = corpora
    with pytest.raises(DataPrepError, match=r"meta\.csv: 8 scenes listed.*4 folds x 3 = 12"):
        recipe.create_mixture_spec(events, scenes, CLASS_NAMES, mixtures_per_fold=3)


def _corpus_copy(tmp_path, tmp_path_factory):
    events_dir, scenes_dir = fixtures.corpus(tmp_path_factory)
    shutil.copytree(events_dir, tmp_path / "fsd")
    return (layouts.read_event_corpus(tmp_path / "fsd", CLASS_NAMES),
            layouts.read_scene_corpus(scenes_dir))


@pytest.mark.parametrize("case", ["short", "missing", "corrupt", "empty"])
def test_unusable_event_files_are_all_reported(tmp_path, tmp_path_factory, case):
    events, scenes = _corpus_copy(tmp_path, tmp_path_factory)
    spec = recipe.create_mixture_spec(events, scenes, CLASS_NAMES, mixtures_per_fold=2)
    bad = [events.audio_path(spec.mixtures[k].events[0].event_audio_name) for k in (0, 7)]
    for path in bad:
        if case == "short":
            fixtures.write_wav(path, fixtures.tone(0.05, 440.0), 44100, "PCM_16")
        elif case == "missing":
            path.unlink()
        elif case == "corrupt":
            path.write_bytes(b"not a wav file at all")
        else:
            path.write_bytes(b"")
    expected = {"short": "shorter than 0.1 s", "missing": "not found",
                "corrupt": "cannot read audio header", "empty": "cannot read audio header"}[case]
    with pytest.raises(DataPrepError, match="2 unusable event file") as err:
        recipe.create_mixture_spec(events, scenes, CLASS_NAMES, mixtures_per_fold=2)
    for path in bad:
        assert f"{path}: " in str(err.value)
    assert expected in str(err.value)


def test_short_scene_is_reported(tmp_path, tmp_path_factory):
    events, _ = _corpus_copy(tmp_path, tmp_path_factory)
    scenes_dir = fixtures.write_tau(tmp_path / "tau", n_scenes=4, seconds=10.0)
    fixtures.write_wav(next((scenes_dir / "audio").iterdir()), np.zeros((48000 * 5, 2)),
                            48000, "PCM_24")
    with pytest.raises(DataPrepError, match=r"scene is 5\.000 s long, shorter than 9\.9 s"):
        recipe.create_mixture_spec(events, layouts.read_scene_corpus(scenes_dir), CLASS_NAMES,
                                   mixtures_per_fold=1)
