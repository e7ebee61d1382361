"""Input pipeline: normalisation, batching, device prefetch."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests import fixtures as data_fixtures
from tests.fixtures import fake_clips
from twostep_jax.data import dataset as ds
from twostep_jax.data import input_pipeline as ip

T, F, K = 311, 64, 41


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return data_fixtures.built_dataset(tmp_path_factory)


def test_norm_stats_per_mel_bin():
    clips = fake_clips(30)
    stats = ip.compute_norm_stats(clips, chunk=7)
    flat = clips.logmel.reshape(-1, F).astype(np.float64)
    np.testing.assert_allclose(stats.mean, flat.mean(0), rtol=1e-6)
    np.testing.assert_allclose(stats.std, flat.std(0), rtol=1e-5)
    z = ip.normalize(clips.logmel, stats)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z.reshape(-1, F).mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(z.reshape(-1, F).std(0), 1, atol=1e-4)
    assert ip.NormStats.from_dict(stats.to_dict()).mean.tolist() == stats.mean.tolist()


def test_train_batches_shapes_and_epoch_coverage():
    clips, devices = fake_clips(50), jax.local_device_count()
    assert devices == 8
    stats = ip.compute_norm_stats(clips)
    batches = list(ip.train_batches(clips, stats, 16, seed=0, epoch=0, num_devices=devices))
    assert len(batches) == ip.steps_per_epoch(50, 16) == 3
    for b in batches:
        assert b["logmel"].shape == (8, 2, T, F) and b["logmel"].dtype == np.float32
        assert b["target"].shape == (8, 2, K) and b["target"].dtype == np.float32
    # Identify clips by their (unique) targets+features: no clip twice in an epoch.
    seen = [tuple(np.round(x[0, :4], 4)) for b in batches for x in b["logmel"].reshape(-1, T, F)]
    assert len(set(seen)) == 48


def test_train_batches_determinism_resume_and_processes():
    clips = fake_clips(50)
    stats = ip.compute_norm_stats(clips)

    def run(**kw):
        return list(ip.train_batches(clips, stats, 16, seed=1, num_devices=4, **kw))

    a, b = run(epoch=0), run(epoch=0)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x["logmel"], y["logmel"])
    assert not np.array_equal(run(epoch=1)[0]["logmel"], a[0]["logmel"])
    resumed = run(epoch=0, start_step=2)
    assert len(resumed) == 1
    np.testing.assert_array_equal(resumed[0]["logmel"], a[2]["logmel"])
    p0 = run(epoch=0, process_index=0, process_count=2)
    p1 = run(epoch=0, process_index=1, process_count=2)
    for whole, first, second in zip(a, p0, p1):
        assert first["logmel"].shape == (4, 2, T, F)
        merged = np.concatenate([first["logmel"].reshape(-1, T, F),
                                 second["logmel"].reshape(-1, T, F)])
        np.testing.assert_array_equal(merged, whole["logmel"].reshape(-1, T, F))


def test_batch_size_errors():
    clips = fake_clips(50)
    stats = ip.compute_norm_stats(clips)
    with pytest.raises(ValueError, match="not divisible by num_devices x process_count = 8 x 1"):
        next(ip.train_batches(clips, stats, 12, 0, 0, num_devices=8))
    with pytest.raises(ValueError, match="not divisible"):
        next(ip.eval_batches(clips, stats, 20, num_devices=8))
    with pytest.raises(ValueError, match="fewer than one global batch"):
        next(ip.train_batches(clips, stats, 64, 0, 0, num_devices=8))


@pytest.mark.parametrize("process_count", [1, 2])
def test_eval_batches_pad_mask_and_cover_every_clip_once(process_count):
    clips = fake_clips(21)
    stats = ip.compute_norm_stats(clips)
    indices, masks = [], []
    for p in range(process_count):
        for b in ip.eval_batches(clips, stats, 16, num_devices=4, process_index=p,
                                 process_count=process_count):
            per = 4 // process_count
            assert b["logmel"].shape == (4, per, T, F) and b["mask"].shape == (4, per)
            assert b["index"].dtype == np.int64 and b["target"].shape == (4, per, K)
            flat = b["index"].reshape(-1)
            real = flat >= 0
            np.testing.assert_array_equal(b["mask"].reshape(-1), real.astype(np.float32))
            np.testing.assert_array_equal(
                b["logmel"].reshape(-1, T, F)[real], ip.normalize(clips.logmel[flat[real]], stats))
            assert not b["logmel"].reshape(-1, T, F)[~real].any()
            indices += flat[real].tolist()
            masks.append(b["mask"])
    assert sorted(indices) == list(range(21))
    assert sum(m.sum() for m in masks) == 21


def test_eval_batches_from_the_real_dataset(data_dir):
    test = ds.load_folds(data_dir, 20, [4])
    stats = ip.compute_norm_stats(ds.load_folds(data_dir, 20, [1, 2, 3]))
    batches = list(ip.eval_batches(test, stats, 8, num_devices=8))
    assert len(batches) == 1 and batches[0]["mask"].sum() == 2
    assert batches[0]["index"].reshape(-1)[:2].tolist() == [0, 1]


def test_prefetch_to_device_feeds_pmap_without_transfers():
    clips = fake_clips(40)
    stats = ip.compute_norm_stats(clips)
    host = list(ip.eval_batches(clips, stats, 16, num_devices=8))
    step = jax.pmap(lambda b: jnp.sum(b["logmel"] * b["mask"][:, None, None]), axis_name="batch")
    device = list(ip.prefetch_to_device(ip.eval_batches(clips, stats, 16, num_devices=8), 2))
    assert len(device) == len(host) == 3
    for h, d in zip(host, device):
        x = d["logmel"]
        assert isinstance(x, jax.Array) and x.shape == (8, 2, T, F)
        shards = sorted(x.addressable_shards, key=lambda s: s.index[0].start)
        assert [s.device for s in shards] == jax.local_devices()
        np.testing.assert_array_equal(np.asarray(x), h["logmel"])
        assert isinstance(d["index"], np.ndarray)  # stays on the host for mapping predictions
        inputs = {"logmel": x, "mask": d["mask"]}
        step(inputs)  # compile outside the guard
        with jax.transfer_guard("disallow"):  # no host->device copy and no resharding
            out = step(inputs)
        np.testing.assert_allclose(np.asarray(out),
                                   (h["logmel"] * h["mask"][..., None, None]).sum((1, 2, 3)),
                                   rtol=1e-4, atol=1e-2)


def test_prefetch_propagates_errors_and_stops_early():
    def source():
        yield {"x": np.zeros((8, 1), np.float32)}
        raise RuntimeError("source broke")

    it = ip.prefetch_to_device(source())
    next(it)
    with pytest.raises(RuntimeError, match="source broke"):
        next(it)

    produced = []

    def endless():
        while True:
            produced.append(1)
            yield {"x": np.zeros((8, 1), np.float32)}

    it = ip.prefetch_to_device(endless(), size=2)
    next(it)
    it.close()  # stops the producer thread
    count = len(produced)
    assert count <= 5
    with pytest.raises(ValueError, match="leading axis 3"):
        ip.shard_to_local_devices({"x": np.zeros((3, 1))})

