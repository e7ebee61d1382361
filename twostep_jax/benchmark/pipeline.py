"""Input-pipeline throughput on a prepared dataset (figures for BENCHMARKS.md).

    python -m twostep_jax.benchmark --pipeline --data DATA_DIR --snr 0

Times the first read of the TFRecords (clips/s), a cached re-read, then `train_batches` and
`eval_batches` from memory, and `prefetch_to_device` onto the local JAX devices. Returns the
figures as a dict and prints one line per stage.
"""

from __future__ import annotations

import time
from typing import Any

import jax

from twostep_jax.data import dataset, input_pipeline


def run_pipeline_benchmark(data_dir: str, snr: int = 0, global_batch: int = 24,
                           num_devices: int = 1, epochs: int = 3) -> dict[str, Any]:
    info = dataset.load_dataset_info(data_dir, snr)
    folds = list(info.num_clips)
    out: dict[str, Any] = {"data_dir": str(info.path), "global_batch": global_batch,
                           "num_devices": num_devices}
    t0 = time.monotonic()
    clips = dataset.load_folds(data_dir, snr, folds)
    first = time.monotonic() - t0
    out.update(clips=len(clips), first_read_s=first, first_read_clips_per_s=len(clips) / first)
    print(f"first read from TFRecords: {len(clips)} clips in {first:.2f} s "
          f"({len(clips) / first:.0f} clips/s, includes the reader's import)")
    t0 = time.monotonic()
    dataset.load_folds(data_dir, snr, folds)
    out["cached_read_s"] = time.monotonic() - t0
    print(f"cached load_folds: {out['cached_read_s']:.3f} s")
    stats = input_pipeline.compute_norm_stats(clips)
    for name, make in (
            ("train_batches", lambda e: input_pipeline.train_batches(clips, stats, global_batch, 0, e,
                                                                      num_devices)),
            ("eval_batches", lambda e: input_pipeline.eval_batches(clips, stats, global_batch,
                                                                    num_devices))):
        t0, count = time.monotonic(), 0
        for epoch in range(epochs):
            for batch in make(epoch):
                count += batch["logmel"].shape[0] * batch["logmel"].shape[1]
        dt = time.monotonic() - t0
        out[f"{name}_clips_per_s"] = count / dt
        print(f"{name}: {count} clips in {dt:.2f} s ({count / dt:.0f} clips/s, "
              f"global batch {global_batch}, {num_devices} device(s))")
    devices = jax.local_device_count()
    if global_batch % devices == 0:
        t0, count = time.monotonic(), 0
        for batch in input_pipeline.prefetch_to_device(
                input_pipeline.train_batches(clips, stats, global_batch, 0, 0, devices)):
            batch["logmel"].block_until_ready()
            count += batch["logmel"].shape[0] * batch["logmel"].shape[1]
        dt = time.monotonic() - t0
        out["prefetch_clips_per_s"] = count / dt
        print(f"prefetch_to_device: {count} clips in {dt:.2f} s ({count / dt:.0f} clips/s onto "
              f"{devices} {jax.devices()[0].platform} device(s))")
    return out
