"""Timing of a builtin data_prep build, stage by stage (numbers for BENCHMARKS.md).

    python -m data_prep.build_timing --out /tmp/bench_data --mixtures-per-fold 250

Times the three stages separately: corpus synthesis (files/s), the worker stage (mixtures/s,
all SNRs from the same tracks) and the TFRecord writing per SNR. (Reading and batching a built
dataset is timed by `python -m twostep_jax.benchmark --pipeline --data DATA_DIR`.)
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m data_prep.build_timing", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="DATA_DIR to build into (rebuilt with overwrite)")
    p.add_argument("--mixtures-per-fold", type=int, default=250)
    p.add_argument("--snr", type=int, nargs="+", default=[0, 10, 20])
    p.add_argument("--workers", type=int, default=None)
    bench_prepare(p.parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
