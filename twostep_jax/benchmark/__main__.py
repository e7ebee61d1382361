"""`python -m twostep_jax.benchmark`: the command line of the throughput benchmark.

    python -m twostep_jax.benchmark --model 2apae --preset paper --global-batch 24 --dtype float32 \
        [--devices N] [--steps 50] [--warmup 3] [--data DATA_DIR --snr 20] [--json OUT.json] \
        [--peak-tflops X] [--compare-torch] [--conv-impl auto|xla|shifted_gemm] [--profile DIR] [--sweep]
        [--parallel pmap|sharded|both]   (default both: one result per parallel form)
    python -m twostep_jax.benchmark --pipeline --data DATA_DIR [--snr 0]   (input pipeline alone)

Only parses flags, configures the backend (before JAX starts it) and calls `benchmark.run` /
`benchmark.pipeline`; see `benchmark/run.py` for what is timed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

def _int_list(s: str) -> list[int]:
    return [int(v) for v in s.split(",") if v.strip()]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    from twostep_jax.backend import add_eigen_conv_flag
    from twostep_jax.config import CONV_IMPLS, DTYPES, MODEL_NAMES, PARALLEL_FORMS, PRESETS

    p = argparse.ArgumentParser(prog="python -m twostep_jax.benchmark", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="2apae", choices=MODEL_NAMES)
    p.add_argument("--preset", default="paper", choices=PRESETS)
    p.add_argument("--global-batch", type=int, default=24)
    p.add_argument("--dtype", default="float32", choices=DTYPES)
    p.add_argument("--devices", type=int, default=1, help="use the first N local devices")
    p.add_argument("--steps", type=int, default=50, help="timed steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps after compilation")
    p.add_argument("--data", default=None, help="DATA_DIR: also time the input pipeline and the "
                   "end-to-end loop on the prepared dataset's folds 1-3")
    p.add_argument("--snr", type=int, default=20)
    p.add_argument("--alpha", type=float, default=0.001)
    p.add_argument("--ema-decay", type=float, default=0.0,
                   help="also update a moving average of the weights every step, as training "
                        "with --ema-decay does (the cpu_small preset trains with 0.99)")
    p.add_argument("--json", default=None, help="write the result(s) as JSON here")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="peak dense TFLOP/s of one device at --dtype (default: detected)")
    p.add_argument("--compare-torch", action="store_true",
                   help="also time the PyTorch CPU reference (needs the torch extra)")
    p.add_argument("--conv-impl", default="auto", choices=CONV_IMPLS)
    p.add_argument("--parallel", default="both", choices=PARALLEL_FORMS + ("both",),
                   help="data-parallel form of the steps (train/parallel.py); both: one result each")
    p.add_argument("--profile", metavar="DIR", default=None,
                   help="after timing, trace 3 train steps with jax.profiler into DIR")
    add_eigen_conv_flag(p)
    p.add_argument("--sweep", action="store_true",
                   help="run --sweep-batches x --sweep-dtypes x --sweep-devices, write a Markdown table")
    p.add_argument("--sweep-batches", type=_int_list, default=[8, 24])
    p.add_argument("--sweep-dtypes", type=lambda s: s.split(","), default=list(DTYPES))
    p.add_argument("--sweep-devices", type=_int_list, default=None,
                   help="device counts (default: 1 and --devices if larger)")
    p.add_argument("--sweep-out", default="benchmark_sweep.md", help="Markdown table path")
    p.add_argument("--pipeline", action="store_true",
                   help="time the input pipeline alone on --data (TFRecord read, batching, prefetch)")
    p.add_argument("--epochs", type=int, default=3, help="with --pipeline: epochs of batches to time")
    args = p.parse_args(argv)
    if min(args.global_batch, args.devices, args.steps, args.epochs) < 1 or args.warmup < 0:
        p.error("--global-batch, --devices, --steps and --epochs must be >= 1, --warmup >= 0")
    if args.pipeline and not args.data:
        p.error("--pipeline needs --data DATA_DIR")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return _run(args)
    except (ValueError, OSError) as e:  # bad data folder, device count, unwritable output
        print(f"python -m twostep_jax.benchmark: error: {e}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    sweep_devices = args.sweep_devices or sorted({1, args.devices})
    from twostep_jax import backend

    backend.configure(max(sweep_devices) if args.sweep else args.devices, args.xla_cpu_eigen_conv)
    if args.pipeline:
        from twostep_jax.benchmark.pipeline import run_pipeline_benchmark

        out: Any = run_pipeline_benchmark(args.data, args.snr, args.global_batch, args.devices, args.epochs)
        _write_json(args.json, out)
        return 0
    from twostep_jax.benchmark.report import markdown_table, summary_line
    from twostep_jax.benchmark.run import run_benchmark, run_sweep

    common = dict(model=args.model, preset=args.preset, steps=args.steps, warmup=args.warmup,
                  data_dir=args.data, snr=args.snr, peak_tflops=args.peak_tflops,
                  compare_torch=args.compare_torch, conv_impl=args.conv_impl, alpha=args.alpha,
                  ema_decay=args.ema_decay)
    from twostep_jax.config import PARALLEL_FORMS

    forms = PARALLEL_FORMS if args.parallel == "both" else (args.parallel,)
    if args.sweep:
        results = run_sweep(args.sweep_batches, args.sweep_dtypes, sweep_devices, forms, **common)
        table = markdown_table(results)
        from twostep_jax import fileio

        fileio.write_text(args.sweep_out, table)
        print(table)
        out = results
    else:
        out = [run_benchmark(global_batch=args.global_batch, dtype=args.dtype, devices=args.devices,
                             profile_dir=args.profile and os.path.join(args.profile, form),
                             parallel=form, **common) for form in forms]
        for r in out:
            print(summary_line(r))
        print(markdown_table(out))
        out = out[0] if len(out) == 1 else out
    _write_json(args.json, out)
    return 0


def _write_json(path: str | None, obj: Any) -> None:
    if path:
        from twostep_jax import fileio

        fileio.write_text(path, json.dumps(obj, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
