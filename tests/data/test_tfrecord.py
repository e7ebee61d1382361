"""twostep_jax.data.tfrecord: the TensorFlow-free reader gives bit-identical clips, targets and
events to the tf.data reader; CRC32C and the framing checks catch damage."""

import shutil

import numpy as np
import pytest

from twostep_jax.data import dataset as ds
from twostep_jax.data import tfrecord


def test_crc32c_known_values():
    assert tfrecord.crc32c(b"123456789") == 0xE3069283  # the standard check value
    assert tfrecord.crc32c(b"") == 0


@pytest.mark.parametrize("fold", [1, 2, 3, 4])
def test_tf_free_reader_is_bit_identical_to_tf_data(builtin_dataset, fold):
    info = ds.load_dataset_info(builtin_dataset, 20)
    ours, tfds_ = ds._read_fold(info, fold, "tfrecord"), ds._read_fold(info, fold, "tfds")
    assert len(ours) == len(tfds_) == info.num_clips[fold]
    assert ours.logmel.dtype == tfds_.logmel.dtype and ours.logmel.tobytes() == tfds_.logmel.tobytes()
    assert ours.target.tobytes() == tfds_.target.tobytes()
    assert ours.events == tfds_.events and any(ours.events)
    for key in ("mixture_name", "fold", "scene_label"):
        np.testing.assert_array_equal(getattr(ours, key), getattr(tfds_, key))


def test_damaged_shard_is_refused(builtin_dataset, tmp_path):
    info = ds.load_dataset_info(builtin_dataset, 20)
    (src,) = sorted(info.path.glob("*-fold1.tfrecord-*"))
    bad = tmp_path / src.name
    shutil.copy(src, bad)
    data = bytearray(bad.read_bytes())
    data[100] ^= 0xFF  # inside the first record's data
    bad.write_bytes(bytes(data))
    with pytest.raises(tfrecord.CorruptRecordError, match="data checksum"):
        list(tfrecord.read_records(bad))
    bad.write_bytes(src.read_bytes()[:-3])  # truncated
    with pytest.raises(tfrecord.CorruptRecordError, match="truncated"):
        list(tfrecord.read_records(bad))


def test_reader_choice(monkeypatch):
    monkeypatch.setenv(ds.READER_ENV, "tfrecord")
    assert ds.resolve_reader() == "tfrecord"
    assert ds.resolve_reader("tfds") == "tfds"
    monkeypatch.setenv(ds.READER_ENV, "auto")
    monkeypatch.setattr(ds, "tensorflow_available", lambda: False)
    assert ds.resolve_reader() == "tfrecord"
    with pytest.raises(ValueError, match="unknown data reader"):
        ds.resolve_reader("grain")
