"""Benchmarks for data preparation and the input pipeline (numbers for BENCHMARKS.md).

    python -m data_prep.bench prepare --out /tmp/bench_data --mixtures-per-fold 250
    python -m data_prep.bench pipeline --data-dir /tmp/bench_data --snr 0

`prepare` times the three stages of a builtin build separately: corpus synthesis (files/s),
the worker stage (mixtures/s, all SNRs from the same tracks) and the TFRecord writing per SNR.
`pipeline` times the first read of the TFRecords (clips/s), then `train_batches` and
`eval_batches` from memory, and `prefetch_to_device` onto the local JAX devices.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def bench_prepare(args: argparse.Namespace) -> None:
    from data_prep import builtin_corpus, prepare

    out = Path(args.out).resolve()
    lines = []
    t0 = time.monotonic()
    n_events, n_scenes = builtin_corpus.corpus_size(args.mixtures_per_fold)
    builtin_corpus.ensure_corpus(out / "sources", args.mixtures_per_fold, workers=args.workers,
                                 log=lambda m: print(m, file=sys.stderr))
    corpus_s = time.monotonic() - t0
    lines.append(f"corpus: {n_events} events + {n_scenes} scenes in {corpus_s:.1f} s "
                 f"({(n_events + n_scenes) / corpus_s:.1f} files/s)")
    builds = []

    def log(message: str) -> None:
        print(message, file=sys.stderr)
        if ": wrote " in message:
            builds.append((message, time.monotonic()))

    t1 = time.monotonic()
    result = prepare.prepare_builtin(out, args.snr, mixtures_per_fold=args.mixtures_per_fold,
                                     workers=args.workers, overwrite=True, log=log)
    total = time.monotonic() - t0
    n = 4 * args.mixtures_per_fold
    if result.mixtures_rendered:
        lines.append(f"features: {result.mixtures_rendered} mixtures x {len(args.snr)} SNRs in "
                     f"{result.render_seconds:.1f} s "
                     f"({result.mixtures_rendered / result.render_seconds:.1f} mixtures/s)")
    write_s = time.monotonic() - t1 - result.render_seconds
    lines.append(f"spec + TFRecords: {write_s:.1f} s for {len(args.snr)} SNRs "
                 f"({len(args.snr) * n / write_s:.0f} clips/s written)")
    lines.append(f"total: {total:.1f} s for {n} mixtures x {len(args.snr)} SNRs "
                 f"({n / total:.1f} mixtures/s end to end, workers={args.workers or 'all'})")
    print("\n".join(lines))


def bench_pipeline(args: argparse.Namespace) -> None:
    from twostep_jax import input_pipeline as ip

    info = ip.load_dataset_info(args.data_dir, args.snr)
    folds = list(info.num_clips)
    t0 = time.monotonic()
    clips = ip.load_folds(args.data_dir, args.snr, folds)
    first = time.monotonic() - t0
    print(f"first read from TFRecords: {len(clips)} clips in {first:.2f} s "
          f"({len(clips) / first:.0f} clips/s, includes TF import)")
    t0 = time.monotonic()
    ip.load_folds(args.data_dir, args.snr, folds)
    print(f"cached load_folds: {time.monotonic() - t0:.3f} s")
    stats = ip.compute_norm_stats(clips)
    for name, make in (
            ("train_batches", lambda e: ip.train_batches(clips, stats, args.global_batch, 0, e,
                                                          args.num_devices)),
            ("eval_batches", lambda e: ip.eval_batches(clips, stats, args.global_batch,
                                                        args.num_devices))):
        t0, count = time.monotonic(), 0
        for epoch in range(args.epochs):
            for batch in make(epoch):
                count += batch["logmel"].shape[0] * batch["logmel"].shape[1]
        dt = time.monotonic() - t0
        print(f"{name}: {count} clips in {dt:.2f} s ({count / dt:.0f} clips/s, "
              f"global batch {args.global_batch}, {args.num_devices} device(s))")
    import jax

    devices = jax.local_device_count()
    if args.global_batch % devices == 0:
        t0, count = time.monotonic(), 0
        for batch in ip.prefetch_to_device(
                ip.train_batches(clips, stats, args.global_batch, 0, 0, devices)):
            batch["logmel"].block_until_ready()
            count += batch["logmel"].shape[0] * batch["logmel"].shape[1]
        dt = time.monotonic() - t0
        print(f"prefetch_to_device: {count} clips in {dt:.2f} s ({count / dt:.0f} clips/s onto "
              f"{devices} {jax.devices()[0].platform} device(s))")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m data_prep.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    a = sub.add_parser("prepare", help="time a builtin build (rebuilds with overwrite)")
    a.add_argument("--out", required=True)
    a.add_argument("--mixtures-per-fold", type=int, default=250)
    a.add_argument("--snr", type=int, nargs="+", default=[0, 10, 20])
    a.add_argument("--workers", type=int, default=None)
    b = sub.add_parser("pipeline", help="time reading and batching a built dataset")
    b.add_argument("--data-dir", required=True)
    b.add_argument("--snr", type=int, default=0)
    b.add_argument("--global-batch", type=int, default=24)
    b.add_argument("--num-devices", type=int, default=1)
    b.add_argument("--epochs", type=int, default=3)
    args = p.parse_args(argv)
    (bench_prepare if args.what == "prepare" else bench_pipeline)(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
