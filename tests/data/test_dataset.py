"""The prepared dataset: info, folder errors, fold loading and caching, the run's splits."""

import numpy as np
import pytest

from tests import fixtures as data_fixtures
from tests.fixtures import fake_clips
from twostep_jax.data import dataset as ds
from twostep_jax.data import input_pipeline as ip
from twostep_jax.data.features import FSD_CLASS_NAMES as CLASS_NAMES

T, F, K = 311, 64, 41


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return data_fixtures.built_dataset(tmp_path_factory)


def test_dataset_info(data_dir):
    info = ds.load_dataset_info(data_dir, 20)
    assert info.class_names == CLASS_NAMES and info.num_classes == 41
    assert (info.frames, info.mels, info.snr_db) == (311, 64, 20)
    assert info.num_clips == {1: 2, 2: 2, 3: 2, 4: 2}
    assert info.path == ds.dataset_dir(data_dir, 20)
    assert ds.load_dataset_info(info.path, 20) == info  # the version folder works too
    assert len(info.fingerprint) == 16
    assert ds.load_dataset_info(data_dir, 0).fingerprint != info.fingerprint
    with pytest.raises(FileNotFoundError, match="no finished snr_10 dataset"):
        ds.load_dataset_info(data_dir, 10)


def test_load_folds_shapes_order_and_cache(data_dir):
    clips = ds.load_folds(data_dir, 20, [4, 1])
    assert clips.logmel.shape == (4, T, F) and clips.logmel.dtype == np.float32
    assert clips.target.shape == (4, K) and clips.target.dtype == np.float32
    assert clips.fold.tolist() == [4, 4, 1, 1]
    assert clips.mixture_name.tolist() == ["00006.wav", "00007.wav", "00000.wav", "00001.wav"]
    assert all(len(ev) == 3 and [e[1] for e in ev] == [0.5, 3.0, 5.5] for ev in clips.events)
    for ev, target in zip(clips.events, clips.target):
        assert set(np.flatnonzero(target)) == {e[0] for e in ev}
    single = ds.load_folds(data_dir, 20, [1])
    assert ds.load_folds(data_dir, 20, [1]).logmel is single.logmel  # cached decode
    assert not single.logmel.flags.writeable
    np.testing.assert_array_equal(single.logmel, clips.logmel[2:])
    with pytest.raises(ValueError, match="fold 5 not in"):
        ds.load_folds(data_dir, 20, [5])


def test_reading_is_deterministic(data_dir):
    a = ds.load_folds(data_dir, 0, [1, 2, 3])
    ds.clear_cache()
    b = ds.load_folds(data_dir, 0, [1, 2, 3])
    assert a.logmel is not b.logmel
    np.testing.assert_array_equal(a.logmel, b.logmel)
    assert a.events == b.events and a.mixture_name.tolist() == b.mixture_name.tolist()


def test_split_train_val_is_deterministic_and_disjoint():
    clips = fake_clips(50)
    train, val = ds.split_train_val(clips, 0.1, seed=3)
    again_train, again_val = ds.split_train_val(clips, 0.1, seed=3)
    assert len(val) == 5 and len(train) == 45
    assert val.mixture_name.tolist() == again_val.mixture_name.tolist()
    names = set(train.mixture_name) | set(val.mixture_name)
    assert names == set(clips.mixture_name) and not set(train.mixture_name) & set(val.mixture_name)
    assert train.mixture_name.tolist() == sorted(train.mixture_name)  # input order kept
    other = ds.split_train_val(clips, 0.1, seed=4)[1]
    assert other.mixture_name.tolist() != val.mixture_name.tolist()
    with pytest.raises(ValueError):
        ds.split_train_val(clips, 0.0)


def test_non_finite_features_name_the_clip():
    clips = fake_clips(10)
    clips.logmel[7, 3, 5] = np.nan
    clips.logmel[2, 0, 0] = np.inf
    with pytest.raises(ValueError, match=r"00002\.wav \(fold 1\), 00007\.wav \(fold 2\)"):
        ip.compute_norm_stats(clips)




def test_folder_layout_and_missing_folders(tmp_path):
    assert ds.dataset_version_dir(tmp_path, 20) == tmp_path / "tfds/sed_mixtures/snr_20/1.0.0"
    assert ds.staging_dir(tmp_path, 0) == tmp_path / "tfds/.staging-snr_0"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ds.dataset_dir(tmp_path / "nowhere", 20)
    ds.staging_dir(tmp_path, 20).mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="build was interrupted"):
        ds.dataset_dir(tmp_path, 20)
    with pytest.raises(ValueError, match="whole number"):
        ds.config_name(2.5)


def test_check_fits_names_both_shapes(data_dir):
    from twostep_jax.config import model_config

    info = ds.load_dataset_info(data_dir, 20)
    info.check_fits(model_config("gap", "test_tiny"))
    with pytest.raises(ValueError, match="41 classes and \\[311, 64\\].*expects 5 classes"):
        info.check_fits(model_config("gap", "test_tiny", classes=5))


def test_training_splits_and_load_split_agree(data_dir):
    from twostep_jax.config import train_config

    config = train_config("test_tiny", model="gap", data_dir=str(data_dir), snr=20, test_fold=2,
                          val_fraction=0.25)
    info, train, val = ds.training_splits(config)
    assert len(train) + len(val) == 6 and len(val) == 2
    assert set(train.fold) | set(val.fold) <= {1, 3, 4}
    assert not set(train.mixture_name) & set(val.mixture_name)
    for split, want in (("train", train), ("val", val)):
        _, got = ds.load_split(config, split)
        np.testing.assert_array_equal(got.mixture_name, want.mixture_name)
    _, test = ds.load_split(config, "test")
    assert set(test.fold) == {2}
    released = train_config("test_tiny", model="gap", data_dir=str(data_dir), snr=20, test_fold=2,
                            select_on_test_fold=True)
    _, train_all, val_test = ds.training_splits(released)
    assert len(train_all) == 6 and set(val_test.fold) == {2}
    with pytest.raises(ValueError, match="unknown split"):
        ds.load_split(config, "dev")
    with pytest.raises(ValueError, match="expects 5 classes"):
        ds.training_splits(train_config("test_tiny", model="gap", data_dir=str(data_dir),
                                        model_overrides={"classes": 5}))
