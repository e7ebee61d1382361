"""The one-call accelerator check behind `scripts/gpu_check.sh OUTDIR` (see README, "GPU check").

    scripts/gpu_check.sh OUTDIR [--data DATA_DIR] [--cpu-dry-run]
    python -m twostep_jax.benchmark.gpu_check OUTDIR ...          (the same, with PYTHONPATH=.)

Made for a bare CUDA host that has jax, flax, optax, orbax-checkpoint, numpy, scikit-learn,
matplotlib and protobuf but none of TensorFlow, librosa, soundfile or tensorboardX: the data
are read by the TF-free TFRecord reader, the run logs to metrics.jsonl only. Within about
8 minutes on one H200 it writes to OUTDIR:

* `gpu_check.json` / `gpu_check.md`: the paper 2APAE model in bfloat16 and float32 at global
  batches 24, 96 and 384, each with both parallel forms (`train.parallel`) on one device —
  compile time, step time, train and eval clips/s, TFLOP/s, MFU, memory (`benchmark.run`). The
  configurations run in that order under a time budget; any left when it is spent are listed
  as skipped, never guessed. The JSON is rewritten after every configuration.
* `trace.tgz`: a `jax.profiler` trace of 3 train steps (bfloat16, batch 96, sharded).
* `train_run.tgz.partNN`: a time-limited (default 2 min) training run of the paper preset in
  bfloat16 on the small prepared dataset (`--data`), packed with its best checkpoint in parts
  of at most 15 MiB; `evaluate.py` restores it on a CPU host afterwards (README gives the
  commands to unpack and evaluate).

`--cpu-dry-run` does the same on CPU with `test_tiny` widths (the benchmark also on shorter
log-mels), one batch size, one timed step and one epoch, XLA's optimisations off (compile time
dominates): what CI runs, in well under a minute of CPU.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tarfile
import time
from pathlib import Path
from typing import Any, Callable

from twostep_jax import fileio

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = ROOT / "data" / "gpu_check"
PREPARE_DATA = ("python -m data_prep --source builtin --out data/gpu_check --snr 20 "
                "--mixtures-per-fold 100")
PART_BYTES = 15 * 2**20  # files coming back from a lent machine: 16 MiB each at most
OPTIONAL = ("tensorflow", "tensorflow_datasets", "librosa", "soundfile", "tqdm", "tensorboardX")


def _plan(dry_run: bool) -> dict[str, Any]:
    """What to measure: the GPU check, or its CPU dry run at test_tiny size."""
    if dry_run:
        # The benchmark's synthetic batches at a quarter of the data's [311, 64] log-mels.
        return dict(preset="test_tiny", dtypes=("bfloat16", "float32"), batches=(8,), steps=1,
                    warmup=0, model_overrides={"frames": 78, "mels": 16},
                    profile=("bfloat16", 8, "sharded"), bench_budget_s=float("inf"),
                    train_batch=8, train_epochs=1, train_seconds=float("inf"))
    return dict(preset="paper", dtypes=("bfloat16", "float32"), batches=(24, 96, 384), steps=10,
                warmup=2, model_overrides={}, profile=("bfloat16", 96, "sharded"), bench_budget_s=270.0,
                train_batch=24, train_epochs=10_000, train_seconds=120.0)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scripts/gpu_check.sh", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("outdir", metavar="OUTDIR", help="where the results go (created)")
    p.add_argument("--data", default=str(DEFAULT_DATA),
                   help=f"prepared dataset (SNR 20) for the training run; made by `{PREPARE_DATA}`")
    p.add_argument("--cpu-dry-run", action="store_true",
                   help="test_tiny shapes on CPU, in seconds (CI): checks the script, not speed")
    p.add_argument("--bench-budget-s", type=float, default=None,
                   help="seconds for the benchmark configurations (default 270; dry run: no limit)")
    p.add_argument("--train-seconds", type=float, default=None,
                   help="length of the training run (default 120)")
    p.add_argument("--dtypes", default=None,
                   help="comma list of benchmark dtypes (default bfloat16,float32): rerun a subset")
    p.add_argument("--batches", default=None,
                   help="comma list of benchmark global batches (default 24,96,384; dry run 8)")
    args = p.parse_args(argv)
    if args.dtypes is not None:
        args.dtypes = tuple(args.dtypes.split(","))
        if unknown := [d for d in args.dtypes if d not in ("bfloat16", "float32")]:
            p.error(f"--dtypes: unknown {', '.join(unknown)}; choose bfloat16 and/or float32")
    if args.batches is not None:
        words = args.batches.split(",")
        if bad := [w for w in words if not w.isdigit() or int(w) == 0]:
            p.error(f"--batches: {', '.join(bad)} is not a positive integer")
        args.batches = tuple(int(w) for w in words)
    if not (Path(args.data) / "tfds").is_dir():
        p.error(f"no prepared dataset at {args.data}; make it first with `{PREPARE_DATA}`")
    return args


def _configurations(plan: dict) -> list[dict[str, Any]]:
    """The benchmark configurations in the order they run: every dtype at the smaller batches
    first, the largest batch last (its compile, mostly convolution autotuning, is the longest)."""
    batches = sorted(plan["batches"])
    order = [(d, b) for b in batches[:-1] for d in plan["dtypes"]] if len(batches) > 1 else []
    order += [(d, batches[-1]) for d in plan["dtypes"]]
    return [{"dtype": d, "global_batch": b, "parallel": f} for d, b in order for f in ("pmap", "sharded")]


def main(argv=None) -> int:
    args = parse_args(argv)
    plan = _plan(args.cpu_dry_run)
    if args.dtypes:
        plan["dtypes"] = args.dtypes
    if args.batches:
        plan["batches"] = args.batches
    if args.bench_budget_s is not None:
        plan["bench_budget_s"] = args.bench_budget_s
    if args.train_seconds is not None:
        plan["train_seconds"] = args.train_seconds
    if args.cpu_dry_run:
        os.environ["JAX_PLATFORMS"] = "cpu"
    from twostep_jax import backend

    backend.configure(1)  # before JAX starts (Eigen convolutions on XLA:CPU; no effect on GPU)
    import jax

    if args.cpu_dry_run:
        jax.config.update("jax_disable_most_optimizations", True)
    out = Path(args.outdir)
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"mode": "cpu-dry-run" if args.cpu_dry_run else "gpu",
                              "host": _host(), "plan": {k: str(v) for k, v in plan.items()},
                              "benchmarks": [], "skipped": [], "errors": [], "train": None}
    t0 = time.monotonic()
    _benchmarks(plan, out, report, lambda: _write(out, report))
    report["train"] = _train(args.data, out, plan)
    report["total_seconds"] = time.monotonic() - t0
    _write(out, report)
    print(f"gpu_check: done in {report['total_seconds']:.0f} s; results in {out}", flush=True)
    return 0


def _host() -> dict[str, Any]:
    import importlib.util

    import jax

    devices = jax.devices()
    return {"backend": jax.default_backend(), "device_kind": devices[0].device_kind,
            "device_count": len(devices), "jax": jax.__version__,
            "missing_optional": [m for m in OPTIONAL if _missing(importlib.util, m)]}


def _missing(util, name: str) -> bool:
    try:
        return util.find_spec(name) is None
    except ValueError:  # sys.modules[name] is None: blocked, as if not installed
        return True


def _benchmarks(plan: dict, out: Path, report: dict, save: Callable[[], None]) -> None:
    """Every (dtype, batch, form) of the plan in order, until the time budget is spent."""
    from twostep_jax.benchmark.report import summary_line
    from twostep_jax.benchmark.run import run_benchmark

    start, done = time.monotonic(), []  # done: (seconds, batch) of each configuration run
    for config in _configurations(plan):
        batch = config["global_batch"]
        # Conservative: the slowest configuration so far per clip, scaled to this batch. The
        # first form at a new shape also pays XLA's convolution autotuning (minutes at 384).
        expected = max((sec * max(1.0, batch / b) for sec, b in done), default=0.0)
        if time.monotonic() - start + expected > plan["bench_budget_s"]:
            report["skipped"].append(config | {"reason": "time budget"})
            continue
        profile = (config["dtype"], batch, config["parallel"]) == plan["profile"]
        t = time.monotonic()
        try:
            r = run_benchmark(model="2apae", preset=plan["preset"], devices=1,
                              steps=plan["steps"], warmup=plan["warmup"],
                              model_overrides=plan["model_overrides"],
                              profile_dir=str(out / "trace") if profile else None, **config)
        except Exception as e:  # e.g. out of memory at the largest batch: keep the others
            report["errors"].append(config | {"error": f"{type(e).__name__}: {e}"[:2000]})
        else:
            report["benchmarks"].append(r)
            print(summary_line(r), flush=True)
        done.append((time.monotonic() - t, batch))
        save()
    if (out / "trace").is_dir():
        _pack(out / "trace", out / "trace.tgz", exclude=())


def _train(data_dir: str, out: Path, plan: dict) -> dict[str, Any]:
    """The paper preset (test_tiny in the dry run) in bfloat16 for `train_seconds`, stopped at
    the first step of an epoch so the last epoch's checkpoint is complete; packed for transfer."""
    from twostep_jax.config import train_config
    from twostep_jax.data import input_pipeline
    from twostep_jax.data.dataset import training_splits
    from twostep_jax.train.loop import train_and_evaluate

    workdir = out / "train_run"
    config = train_config(plan["preset"], data_dir=data_dir, snr=20, test_fold=1,
                          global_batch=plan["train_batch"], epochs=plan["train_epochs"],
                          keep_checkpoints=1, progress=False, model_overrides={"dtype": "bfloat16"})
    _, train, _ = training_splits(config)
    per_epoch = input_pipeline.steps_per_epoch(len(train.target), config.global_batch)
    start = time.monotonic()

    def should_stop(step: int) -> bool:  # polled after each step
        first_of_epoch = step > per_epoch and (step - 1) % per_epoch == 0
        return first_of_epoch and time.monotonic() - start > plan["train_seconds"]

    result = train_and_evaluate(config, str(workdir), should_stop=should_stop)
    seconds = time.monotonic() - start
    log = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    train_log = [r for r in log if r["kind"] == "train"]
    val_log = [r for r in log if r["kind"] == "val"]
    parts = _pack(workdir, out / "train_run.tgz", exclude=("checkpoints/latest",))
    return {"seconds": seconds, "steps_per_epoch": per_epoch, "epochs_completed": len(val_log),
            "steps": train_log[-1]["step"] if train_log else 0,
            "first_loss": train_log[0]["loss"] if train_log else None,
            "last_loss": train_log[-1]["loss"] if train_log else None,
            "val_micro_ap": [r["micro_ap"] for r in val_log],
            "stopped_by_time": "stopped_at_step" in result, "packed": parts,
            "config": config.to_dict()}


def _pack(folder: Path, target: Path, exclude: tuple[str, ...]) -> list[str]:
    """`folder` (minus `exclude`d subpaths) as a gzipped tar, in parts of at most PART_BYTES
    named `target.partNN` when larger; returns the file names written."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(folder, arcname=folder.name,
                filter=lambda info: None if any(
                    info.name.startswith(f"{folder.name}/{e}") for e in exclude) else info)
    data = buf.getvalue()
    parts = [(target, data)] if len(data) <= PART_BYTES else [
        (target.with_name(f"{target.name}.part{i // PART_BYTES:02d}"), data[i:i + PART_BYTES])
        for i in range(0, len(data), PART_BYTES)]
    for path, chunk in parts:
        with fileio.atomic_path(path) as tmp:
            tmp.write_bytes(chunk)
    return [path.name for path, _ in parts]


def _write(out: Path, report: dict) -> None:
    fileio.write_text(str(out / "gpu_check.json"), json.dumps(report, indent=2, default=str) + "\n")
    fileio.write_text(str(out / "gpu_check.md"), markdown(report))


def markdown(report: dict) -> str:
    """The report as Markdown: host, the benchmark table, what was skipped or failed, the run."""
    from twostep_jax.benchmark.report import markdown_table

    host = report["host"]
    lines = [f"# gpu_check ({report['mode']})", "",
             f"{host['device_count']} x {host['device_kind']} ({host['backend']}), jax {host['jax']}; "
             f"not installed: {', '.join(host['missing_optional']) or 'none'}", ""]
    if report["benchmarks"]:
        lines += [markdown_table(report["benchmarks"]), "| dtype | batch | parallel | peak device "
                  "memory GiB (process so far) | XLA plan GiB (args + temp + out) |", "|---|---|---|---|---|"]
        for r in report["benchmarks"]:
            m = r["memory"]
            plan = sum(m[k] or 0 for k in ("xla_argument_bytes", "xla_temp_bytes", "xla_output_bytes"))
            peak = "–" if m["peak_device_bytes"] is None else f"{m['peak_device_bytes'] / 2**30:.2f}"
            lines.append(f"| {r['dtype']} | {r['global_batch']} | {r['parallel']} | {peak} | {plan / 2**30:.2f} |")
        lines.append("")
    for key in ("skipped", "errors"):
        for c in report[key]:
            lines.append(f"- {key[:-1] if key == 'errors' else 'skipped'}: {c['dtype']} batch "
                         f"{c['global_batch']} {c['parallel']}: {c.get('reason') or c.get('error')}")
    t = report["train"]
    if t:
        lines += ["", f"Training run ({t['config']['preset']}, bfloat16, batch {t['config']['global_batch']}): "
                  f"{t['seconds']:.0f} s, {t['epochs_completed']} epochs of {t['steps_per_epoch']} steps, "
                  f"loss {t['first_loss']:.4f} -> {t['last_loss']:.4f}, val micro-AP "
                  f"{t['val_micro_ap'][-1] if t['val_micro_ap'] else float('nan'):.4f}; packed in "
                  f"{', '.join(t['packed'])}"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
