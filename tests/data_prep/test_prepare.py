"""data_prep.prepare, the whole build flow: the TFDS dataset round trip, serial = parallel builds,
safety and resumability (interrupted runs, finished datasets kept, recipe changes, the lock),
saved audio."""

import json

import numpy as np
import pytest
import soundfile

from data_prep import mixing, prepare, render
from data_prep.errors import DataPrepError
from tests import fixtures
from twostep_jax.data import dataset as ds
from twostep_jax.data import features as F


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    return fixtures.mixture_spec(tmp_path_factory)


# ------------------------------------------------------------------ TFDS round trip


def test_tfrecord_round_trip(tmp_path_factory, spec):
    data_dir = fixtures.built_dataset(tmp_path_factory)
    cache = render.EventCache()
    for snr in (0, 20):
        info = ds.load_dataset_info(data_dir, snr)
        assert info.num_clips == {1: 2, 2: 2, 3: 2, 4: 2}
        assert info.class_names == F.FSD_CLASS_NAMES and (info.frames, info.mels) == (311, 64)
        assert info.recipe["event_order"] == "faithful" and info.recipe["snr_db"] == snr
        assert info.recipe["spec_fingerprint"] == spec.fingerprint
        clips = ds.load_folds(data_dir, snr, [1, 2, 3, 4])
        assert clips.mixture_name.tolist() == [m.mixture_name for m in spec.mixtures]
        for i, m in enumerate(spec.mixtures):
            unit_events, scene = render.mixture_tracks(spec, m, cache)
            want = F.logmel(mixing.mix_at_snr(unit_events, scene, snr).mixture)
            np.testing.assert_array_equal(clips.logmel[i], want)
            labels = [F.FSD_CLASS_NAMES.index(e.event_label) for e in m.events]
            assert clips.events[i] == [(lab, pytest.approx(e.onset, abs=1e-6),
                                        pytest.approx(e.offset, abs=1e-6))
                                       for lab, e in zip(labels, m.events)]
            assert set(np.flatnonzero(clips.target[i])) == set(labels)
            assert clips.fold[i] == m.fold and clips.scene_label[i] == m.scene_label
    description = json.loads((info.path / "dataset_info.json").read_text())["description"]
    assert "Hamming 2048" in description and '"mixtures_per_fold": 2' in description
    labels_file = info.path / "events-label.labels.txt"
    assert labels_file.read_text().split() == list(F.FSD_CLASS_NAMES)


def test_parallel_build_is_identical(tmp_path_factory):
    serial = fixtures.built_dataset(tmp_path_factory)
    parallel = fixtures.built_dataset(tmp_path_factory, snrs=(0,), workers=2)
    a, b = ds.load_folds(serial, 0, [1, 2, 3, 4]), ds.load_folds(parallel, 0, [1, 2, 3, 4])
    np.testing.assert_array_equal(a.logmel, b.logmel)
    np.testing.assert_array_equal(a.target, b.target)
    assert (serial / "mixture_spec.json").read_text() == \
        (parallel / "mixture_spec.json").read_text().replace(str(parallel), str(serial))


# ------------------------------------------------------------------ safety and resumability


def _prepare(tmp_path_factory, out, **options):
    events, scenes = fixtures.corpus(tmp_path_factory)
    return prepare.prepare_dcase(events, scenes, out, [10], mixtures_per_fold=2, workers=1,
                                 log=lambda message: None, **options)


def test_interrupted_run_never_looks_complete_and_resumes(tmp_path, tmp_path_factory,
                                                          monkeypatch):
    out = tmp_path / "data"
    real_render = render.render_chunk
    calls = []

    def render_then_crash(spec, chunk, *args):
        if len(calls) == 2:
            raise KeyboardInterrupt("simulated kill during the worker stage")
        calls.append(chunk)
        return real_render(spec, chunk, *args)

    monkeypatch.setattr(render, "render_chunk", render_then_crash)
    with pytest.raises(KeyboardInterrupt):
        _prepare(tmp_path_factory, out)
    assert len(list((out / "work").rglob("*.npy"))) == 2  # two whole chunks, nothing partial
    with pytest.raises(FileNotFoundError, match="no finished snr_10 dataset"):
        ds.load_dataset_info(out, 10)

    # Second attempt: the worker stage resumes, then the TFRecord writer dies mid-split.
    from data_prep import builder

    real_generate = builder.SedMixtures._generate_examples

    def generate_then_crash(self, *args):
        yield next(iter(real_generate(self, *args)))
        raise KeyboardInterrupt("simulated kill while writing TFRecords")

    calls.clear()
    monkeypatch.setattr(render, "render_chunk", lambda *a: calls.append(a[1]) or real_render(*a))
    monkeypatch.setattr(builder.SedMixtures, "_generate_examples", generate_then_crash)
    with pytest.raises(KeyboardInterrupt):
        _prepare(tmp_path_factory, out)
    assert len(calls) == 2  # only the two chunks that were missing
    with pytest.raises(FileNotFoundError, match="interrupted"):
        ds.load_dataset_info(out, 10)
    assert not (out / "tfds" / "sed_mixtures").exists()

    # Third attempt completes from the finished chunks, and cleans up after itself.
    calls.clear()
    monkeypatch.setattr(builder.SedMixtures, "_generate_examples", real_generate)
    result = _prepare(tmp_path_factory, out)
    assert calls == [] and result.built == [10]
    assert ds.load_dataset_info(out, 10).num_clips == {1: 2, 2: 2, 3: 2, 4: 2}
    assert not (out / "work").exists() and not list((out / "tfds").glob(".staging*"))


def test_finished_dataset_is_kept_and_recipe_changes_need_overwrite(tmp_path, tmp_path_factory,
                                                                   monkeypatch):
    out = tmp_path / "data"
    _prepare(tmp_path_factory, out)
    first = ds.load_dataset_info(out, 10).fingerprint
    from data_prep import builder

    def no_build(*args, **kwargs):
        raise AssertionError("a finished dataset was rebuilt")

    monkeypatch.setattr(builder, "build_snr_dataset", no_build)
    result = _prepare(tmp_path_factory, out)
    assert result.reused == [10] and result.built == []
    with pytest.raises(DataPrepError, match=r"different recipe \(event_order: built 'faithful', "
                                            r"requested 'shuffled'\).*--overwrite"):
        _prepare(tmp_path_factory, out, event_order="shuffled")
    monkeypatch.undo()
    result = _prepare(tmp_path_factory, out, event_order="shuffled", overwrite=True)
    info = ds.load_dataset_info(out, 10)
    assert result.built == [10] and info.recipe["event_order"] == "shuffled"
    assert info.fingerprint != first


def test_save_audio_writes_the_mixtures(tmp_path, tmp_path_factory, spec):
    out = tmp_path / "data"
    _prepare(tmp_path_factory, out, save_audio=True)
    wavs = sorted((out / "audio" / "snr_10").iterdir())
    assert [w.name for w in wavs] == [m.mixture_name for m in spec.mixtures]
    audio, sr = soundfile.read(str(wavs[0]))
    assert sr == 32000 and audio.shape == (F.CLIP_SAMPLES,)
    unit_events, scene = render.mixture_tracks(spec, spec.mixtures[0], render.EventCache())
    want = mixing.mix_at_snr(unit_events, scene, 10).mixture
    np.testing.assert_allclose(audio, want, atol=1.0 / 32768 + 1e-9)


def test_lock_refuses_a_concurrent_run(tmp_path, tmp_path_factory):
    import fcntl

    out = tmp_path / "data"
    out.mkdir()
    with open(out / ".prepare.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(DataPrepError, match="another data_prep run"):
            _prepare(tmp_path_factory, out)


# ------------------------------------------------------------------ what a build tells the user


def test_classes_without_verified_clips_are_reported_and_recorded(tmp_path_factory, tmp_path):
    data_dir = fixtures.built_dataset(tmp_path_factory)
    missing = list(F.FSD_CLASS_NAMES[len(fixtures.LABELS):])  # the corpus has 6 of the 41 labels
    for snr in (0, 20):
        meta = json.loads((ds.dataset_version_dir(data_dir, snr) / "metadata.json").read_text())
        assert meta["classes_without_verified_clips"] == missing
    # Said at prep time, before the recipe runs (here it then fails: 2 scenes for 8 mixtures).
    messages = []
    out = tmp_path / "out"
    with pytest.raises(DataPrepError, match="scenes listed"):
        prepare.prepare_dcase(fixtures.small_fsd(tmp_path), fixtures.write_tau(tmp_path / "tau", 2),
                              out, [20], mixtures_per_fold=2, workers=1, log=messages.append)
    (warning,) = [m for m in messages if m.startswith("warning:")]
    verified = {label for _, label, v, _ in fixtures.event_rows(8) if v}  # small_fsd's rows
    assert len(verified) == 5  # one of its 6 labels has an unverified clip only
    assert f"{41 - len(verified)} of 41 classes have no verified clips" in warning
    assert "Acoustic_guitar" not in warning and "Writing" in warning and "macro averages" in warning
    assert not out.exists()  # the failed run removed its lock and the folder it made


def test_no_tfds_download_banner(tmp_path, capfd):
    from data_prep import builder

    config = builder.mixture_config(20)
    b = builder.builder_class(config)(config=config.name, data_dir=str(tmp_path))
    b._log_download_bytes()
    b._log_download_done()
    assert capfd.readouterr().out == ""
