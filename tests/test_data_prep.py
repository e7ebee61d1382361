"""Mixing, the TFDS dataset round trip, determinism, resumability and the builtin corpus."""

import json

import numpy as np
import pytest
import soundfile

import data_fixtures
from data_prep import (__main__ as cli, builtin_corpus, layouts, mixing, prepare, recipe,
                       render, synth_events)
from data_prep.errors import DataPrepError
from twostep_jax import features as F
from twostep_jax import input_pipeline as ip


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    events_dir, scenes_dir = data_fixtures.corpus(tmp_path_factory)
    return recipe.create_mixture_spec(layouts.read_event_corpus(events_dir, F.CLASS_NAMES),
                                      layouts.read_scene_corpus(scenes_dir), F.CLASS_NAMES,
                                      mixtures_per_fold=2)


def rms(x):
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


# ------------------------------------------------------------------ mixing


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


# ------------------------------------------------------------------ TFDS round trip


def test_tfrecord_round_trip(tmp_path_factory, spec):
    data_dir = data_fixtures.built_dataset(tmp_path_factory)
    cache = render.EventCache()
    for snr in (0, 20):
        info = ip.load_dataset_info(data_dir, snr)
        assert info.num_clips == {1: 2, 2: 2, 3: 2, 4: 2}
        assert info.class_names == F.CLASS_NAMES and (info.frames, info.mels) == (311, 64)
        assert info.recipe["event_order"] == "faithful" and info.recipe["snr_db"] == snr
        assert info.recipe["spec_fingerprint"] == spec.fingerprint
        clips = ip.load_folds(data_dir, snr, [1, 2, 3, 4])
        assert clips.mixture_name.tolist() == [m.mixture_name for m in spec.mixtures]
        for i, m in enumerate(spec.mixtures):
            unit_events, scene = render.mixture_tracks(spec, m, cache)
            want = F.logmel(mixing.mix_at_snr(unit_events, scene, snr).mixture)
            np.testing.assert_array_equal(clips.logmel[i], want)
            labels = [F.CLASS_NAMES.index(e.event_label) for e in m.events]
            assert clips.events[i] == [(lab, pytest.approx(e.onset, abs=1e-6),
                                        pytest.approx(e.offset, abs=1e-6))
                                       for lab, e in zip(labels, m.events)]
            assert set(np.flatnonzero(clips.target[i])) == set(labels)
            assert clips.fold[i] == m.fold and clips.scene_label[i] == m.scene_label
    description = json.loads((info.path / "dataset_info.json").read_text())["description"]
    assert "Hamming 2048" in description and '"mixtures_per_fold": 2' in description
    labels_file = info.path / "events-label.labels.txt"
    assert labels_file.read_text().split() == list(F.CLASS_NAMES)


def test_parallel_build_is_identical(tmp_path_factory):
    serial = data_fixtures.built_dataset(tmp_path_factory)
    parallel = data_fixtures.built_dataset(tmp_path_factory, snrs=(0,), workers=2)
    a, b = ip.load_folds(serial, 0, [1, 2, 3, 4]), ip.load_folds(parallel, 0, [1, 2, 3, 4])
    np.testing.assert_array_equal(a.logmel, b.logmel)
    np.testing.assert_array_equal(a.target, b.target)
    assert (serial / "mixture_spec.json").read_text() == \
        (parallel / "mixture_spec.json").read_text().replace(str(parallel), str(serial))


# ------------------------------------------------------------------ safety and resumability


def _prepare(tmp_path_factory, out, **options):
    events, scenes = data_fixtures.corpus(tmp_path_factory)
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
        ip.load_dataset_info(out, 10)

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
        ip.load_dataset_info(out, 10)
    assert not (out / "tfds" / "sed_mixtures").exists()

    # Third attempt completes from the finished chunks, and cleans up after itself.
    calls.clear()
    monkeypatch.setattr(builder.SedMixtures, "_generate_examples", real_generate)
    result = _prepare(tmp_path_factory, out)
    assert calls == [] and result.built == [10]
    assert ip.load_dataset_info(out, 10).num_clips == {1: 2, 2: 2, 3: 2, 4: 2}
    assert not (out / "work").exists() and not list((out / "tfds").glob(".staging*"))


def test_finished_dataset_is_kept_and_recipe_changes_need_overwrite(tmp_path, tmp_path_factory,
                                                                   monkeypatch):
    out = tmp_path / "data"
    _prepare(tmp_path_factory, out)
    first = ip.load_dataset_info(out, 10).fingerprint
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
    info = ip.load_dataset_info(out, 10)
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


def test_progress_line_reports_rate_and_eta():
    import io

    from twostep_jax.progress import Progress

    stream = io.StringIO()
    progress = Progress("features", 4, stream=stream, interval=0)
    progress.update(1)
    assert stream.getvalue().startswith("features: 1/4 mixtures (25%) | ")
    assert "mixtures/s | ETA " in stream.getvalue()
    progress.update(3)
    assert "4/4 mixtures (100%)" in stream.getvalue() and "done in" in stream.getvalue()


# ------------------------------------------------------------------ command line


def test_cli_reports_bad_input_without_a_traceback(tmp_path, capsys):
    code = cli.main(["--source", "dcase", "--events-dir", str(tmp_path / "missing"),
                     "--scenes-dir", str(tmp_path), "--out", str(tmp_path / "out"), "--snr", "0"])
    assert code == 2
    assert f"error: events folder {tmp_path / 'missing'} does not exist" in capsys.readouterr().err


def test_cli_flag_validation():
    with pytest.raises(SystemExit):
        cli.parse_args(["--source", "dcase", "--out", "x"])
    with pytest.raises(SystemExit):
        cli.parse_args(["--source", "builtin", "--out", "x", "--events-dir", "y"])
    args = cli.parse_args(["--out", "x"])
    assert (args.source, args.snr, args.mixtures_per_fold, args.event_order) == (
        "builtin", [0, 10, 20], 2000, "faithful")


# ------------------------------------------------------------------ builtin corpus


def test_builtin_classes_are_41_honest_names():
    names = builtin_corpus.CLASS_NAMES
    assert len(names) == 41 and list(names) == sorted(names) and len(set(names)) == 41
    assert not set(names) & set(F.CLASS_NAMES)
    durations = [c.durations for c in synth_events.EVENT_CLASSES.values()]
    assert min(d[0] for d in durations) >= 0.3 and max(d[1] for d in durations) <= 6.0
    assert len(builtin_corpus.SCENE_LABELS) == 10


@pytest.mark.parametrize("name", builtin_corpus.CLASS_NAMES)
def test_every_builtin_class_synthesises_varied_clips(name):
    clips = [synth_events.synthesize_event(name, np.random.default_rng([7, i]), 44100)
             for i in range(3)]
    again = synth_events.synthesize_event(name, np.random.default_rng([7, 0]), 44100)
    np.testing.assert_array_equal(clips[0], again)  # a pure function of its seed
    for x in clips:
        assert 0.3 <= x.size / 44100 <= 6.0 and np.all(np.isfinite(x))
        assert 0.3 - 1e-9 <= np.max(np.abs(x)) <= 0.95 + 1e-9 and rms(x) > 1e-3
    assert len({x.size for x in clips}) > 1 or not np.allclose(clips[0], clips[1])


def test_builtin_metadata_has_unverified_and_mislabelled_clips():
    rows = [builtin_corpus.event_row(0, i) for i in range(4000)]
    verified = np.mean([r[2] for r in rows])
    wrong = [r[1] != r[3] for r in rows if not r[2]]
    assert 0.55 < verified < 0.65 and 0.28 < np.mean(wrong) < 0.42
    assert not any(r[1] != r[3] for r in rows if r[2])  # verified labels are right
    assert len({r[0] for r in rows}) == 4000
    assert builtin_corpus.corpus_size(2000) == (151 * 41, 8000)  # ~6.5 uses per verified clip


def test_builtin_corpus_layouts_resume_and_cli(tmp_path, monkeypatch, capsys):
    out = tmp_path / "data"
    real_write = builtin_corpus.write_scene

    def write_then_crash(folder, seed, index):
        if index == 2:
            raise KeyboardInterrupt("simulated kill during corpus generation")
        real_write(folder, seed, index)

    monkeypatch.setattr(builtin_corpus, "write_scene", write_then_crash)
    with pytest.raises(KeyboardInterrupt):
        builtin_corpus.ensure_corpus(out / "sources", mixtures_per_fold=1, workers=1,
                                     log=lambda m: None)
    assert not (out / "sources").exists()
    done_event = next((out / "sources.partial" / "events" / "audio_train").iterdir())
    stamp = done_event.stat().st_mtime_ns
    monkeypatch.undo()

    assert cli.main(["--source", "builtin", "--out", str(out), "--mixtures-per-fold", "1",
                     "--snr", "20", "--workers", "1"]) == 0
    assert (out / "sources" / "events" / "audio_train" / done_event.name).stat().st_mtime_ns \
        == stamp  # resumed, not regenerated
    events = layouts.read_event_corpus(out / "sources" / "events", builtin_corpus.CLASS_NAMES)
    scenes = layouts.read_scene_corpus(out / "sources" / "scenes")
    assert events.layout == "kaggle" and len(events.clips) == 6 * 41 and len(scenes.clips) == 4
    info = soundfile.info(str(events.audio_path(events.clips[0].fname)))
    assert (info.samplerate, info.channels, info.subtype) == (44100, 1, "PCM_16")
    info = soundfile.info(str(scenes.audio_path(scenes.clips[0].name)))
    assert (info.samplerate, info.channels, info.subtype, info.duration) == (
        32000, 1, "PCM_16", 10.0)
    dataset = ip.load_dataset_info(out, 20)
    assert dataset.class_names == builtin_corpus.CLASS_NAMES
    assert dataset.recipe["source"] == "builtin" and dataset.num_clips == {1: 1, 2: 1, 3: 1, 4: 1}
    assert f"snr 20: {prepare.dataset_version_dir(out.resolve(), 20)}" in capsys.readouterr().out


def test_builtin_files_are_deterministic(tmp_path):
    for folder in ("a", "b"):
        builtin_corpus.write_event(tmp_path / folder, 3, 11)
        builtin_corpus.write_scene(tmp_path / folder, 3, 5)
    for rel in (f"audio_train/{builtin_corpus.event_fname(3, 11)}",
                f"audio/{builtin_corpus.scene_row(5)[0]}"):
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()


def test_difficulty_probe_runs(tmp_path_factory):
    from data_prep import difficulty

    data_dir = str(data_fixtures.built_dataset(tmp_path_factory))
    scores = difficulty.probe_scores(data_dir, 20)
    assert 0.0 <= scores["micro_ap"] <= 1.0 and scores["n_train"] == 6
    assert 0.0 <= difficulty.segment_accuracy(data_dir, 20) <= 1.0
