"""Throughput benchmark of the project's real train and eval steps: time, clips/s, FLOPs, MFU, memory.

    python -m twostep_jax.benchmark --model 2apae --preset paper --global-batch 24 --dtype float32 \
        [--devices N] [--steps 50] [--warmup 3] [--data DATA_DIR --snr 20] [--json OUT.json] \
        [--peak-tflops X] [--compare-torch] [--conv-impl auto|xla|shifted_gemm] [--sweep]

What is timed is exactly what training runs (`train.loop`): `train.step.make_train_step` (pmapped
over the first N local devices, state replicated and donated, BatchNorm synced over the devices)
and `train.step.make_eval_step`, compiled ahead of time so compilation is reported separately.
Each timed call is followed by `block_until_ready`; the spread is reported as median/p10/p90.
A second, back-to-back loop (one sync at the end, as in training) gives `train_loop_clips_per_s`,
the reference for the end-to-end (input pipeline + step) figure when `--data` is given.

FLOPs per clip, and the peaks MFU is measured against: `benchmark.flops`.

`--devices N` on a CPU-only host uses fake CPU devices (set before the backend starts, or via
XLA_FLAGS=--xla_force_host_platform_device_count=N); they share the host's cores, so their
scaling figures check correctness, not speed.
"""

from __future__ import annotations

import datetime
import math
import os
import platform
import resource
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from twostep_jax.benchmark.flops import PEAK_TFLOPS, analytic_flops, detect_accelerator, flops_per_clip
from twostep_jax.benchmark.report import summary_line
from twostep_jax.data import input_pipeline
from twostep_jax.data.dataset import load_folds
from twostep_jax.model.models import create_model
from twostep_jax.model.ops import select_conv
from twostep_jax.train.parallel import ParallelForm, parallel_form
from twostep_jax.train.step import create_train_state

# JAX's backend starts at the first device query; the CLI configures it first (fake CPU devices,
# XLA flags: `twostep_jax.backend.configure`), so nothing at import time may query devices.

# --------------------------------------------------------------------------- timing helpers


def _stats(seconds: Sequence[float]) -> dict[str, float]:
    a = np.asarray(seconds, np.float64)
    return {"median": float(np.median(a)), "p10": float(np.percentile(a, 10)),
            "p90": float(np.percentile(a, 90)), "mean": float(a.mean()), "min": float(a.min()),
            "max": float(a.max()), "n": int(a.size)}


def _timed_round_robin(calls: dict[str, Callable[[], Any]], rounds: int) -> dict[str, dict]:
    """Call each of `calls` once per round, `rounds` times, each call synchronised.

    Round-robin interleaving gives side-by-side figures (e.g. JAX vs torch) the same share of
    whatever else the host is doing. Returns per name {"times": [s, ...], "usage": per-call
    process CPU seconds (user, kernel) and minor page faults}. On the CPU backend user+sys over
    wall time shows how many cores a call kept busy; kernel time with page faults shows memory
    being returned to the OS and faulted in again.
    """
    out = {name: {"times": [], "user_s": 0.0, "sys_s": 0.0, "minor_page_faults": 0}
           for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            before, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            jax.block_until_ready(call())
            elapsed, after = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
            rec = out[name]
            rec["times"].append(elapsed)
            rec["user_s"] += after.ru_utime - before.ru_utime
            rec["sys_s"] += after.ru_stime - before.ru_stime
            rec["minor_page_faults"] += after.ru_minflt - before.ru_minflt
    for rec in out.values():
        rec["usage"] = {k: rec.pop(k) / max(rounds, 1) for k in ("user_s", "sys_s", "minor_page_faults")}
    return out


def _memory(devices, compiled) -> dict[str, Any]:
    """Peak device memory where the backend reports it; host RSS otherwise (clearly labelled)."""
    stats = devices[0].memory_stats() or {}
    peak = [d.memory_stats().get("peak_bytes_in_use") for d in devices] if stats else []
    analysis = compiled.memory_analysis()
    return {
        "peak_device_bytes": max(peak) if peak and None not in peak else None,
        # On the CPU backend device buffers live in host memory: this is the process's peak RSS
        # (everything so far in this process), not a per-device figure.
        "host_peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        # XLA's static plan for one device: arguments, outputs and scratch of the train step.
        "xla_argument_bytes": getattr(analysis, "argument_size_in_bytes", None),
        "xla_output_bytes": getattr(analysis, "output_size_in_bytes", None),
        "xla_temp_bytes": getattr(analysis, "temp_size_in_bytes", None),
    }


def _synthetic_batch(rng: np.random.Generator, num_devices: int, per_device: int, frames: int,
                     mels: int, classes: int) -> dict[str, np.ndarray]:
    """A z-scored-like log-mel batch and sparse multi-hot targets, laid out [D, B, ...]."""
    return {
        "logmel": rng.standard_normal((num_devices, per_device, frames, mels), np.float32),
        "target": (rng.random((num_devices, per_device, classes)) < 0.05).astype(np.float32),
    }


# --------------------------------------------------------------------------- the benchmark


def compile_steps(net, state, batch, alpha: float, form: ParallelForm | None = None):
    """Ahead-of-time compile the project's train and eval steps (of `form`, default pmap) for
    these inputs.

    `state` / `batch` may be concrete or abstract (`jax.ShapeDtypeStruct`); batch leaves are what
    the form's steps take (`form.put_batch`). Returns (train, eval, {compile seconds}).
    """
    form = form or parallel_form("pmap")
    t0 = time.perf_counter()
    lowered = form.make_train_step(net, alpha).lower(state, batch, jax.random.PRNGKey(0))
    t1 = time.perf_counter()
    train = lowered.compile()
    t2 = time.perf_counter()
    evaluate = form.make_eval_step(net).lower(state, {"logmel": batch["logmel"]}).compile()
    return train, evaluate, {"train_trace_lower_s": t1 - t0, "train_compile_s": t2 - t1,
                             "eval_lower_compile_s": time.perf_counter() - t2}


def count_flops(model: str = "2apae", preset: str = "paper", global_batch: int = 1,
                devices: int = 1, dtype: str = "float32", conv_impl: str = "auto",
                alpha: float = 0.001) -> dict[str, Any]:
    """`flops_per_clip` from compilation alone (abstract state and batch: nothing is run)."""
    net = create_model(model, preset, axis_name="batch", dtype=dtype, conv_impl=conv_impl)
    cfg = net.config
    state = jax.eval_shape(lambda: create_train_state(net, jax.random.PRNGKey(0), 1e-3))
    per_device = global_batch // devices
    batch = {"logmel": jax.ShapeDtypeStruct((devices, per_device, cfg.frames, cfg.mels), jnp.float32),
             "target": jax.ShapeDtypeStruct((devices, per_device, cfg.classes), jnp.float32)}
    train, evaluate, _ = compile_steps(net, state, batch, alpha)
    return flops_per_clip(cfg, train, evaluate, devices, global_batch)



def run_benchmark(model: str = "2apae", preset: str = "paper", global_batch: int = 24,
                  dtype: str = "float32", devices: int = 1, steps: int = 50, warmup: int = 3,
                  data_dir: str | None = None, snr: int = 20, peak_tflops: float | None = None,
                  compare_torch: bool = False, conv_impl: str = "auto", alpha: float = 0.001,
                  seed: int = 0, profile_dir: str | None = None,
                  parallel: str = "pmap", model_overrides: dict | None = None,
                  ema_decay: float = 0.0) -> dict[str, Any]:
    """Benchmark one configuration in this process; returns the JSON-ready result dict.

    `parallel` is the data-parallel form (`train.parallel`: "pmap" or "sharded") of the steps;
    `model_overrides` are ModelConfig fields (e.g. smaller `frames`/`mels` for a dry run).
    `ema_decay` > 0 times the step with its weight-average update (`--ema-decay` in training).

    With `profile_dir`, a few extra train steps (after all timing) run under `jax.profiler.trace`
    and leave a trace there (TensorBoard's profile plugin or Perfetto reads it).
    """
    if steps < 1 or warmup < 0:
        raise ValueError(f"need steps >= 1 and warmup >= 0, got {steps}, {warmup}")
    if compare_torch and dtype != "float32":
        raise ValueError("--compare-torch times the float32 PyTorch reference; use --dtype float32")
    available = jax.local_devices()
    if devices > len(available):
        raise ValueError(
            f"--devices {devices} but only {len(available)} local device(s); on a CPU host run "
            f"with XLA_FLAGS=--xla_force_host_platform_device_count={devices}")
    devs = available[:devices]
    if global_batch % devices:
        raise ValueError(f"global batch {global_batch} is not divisible by {devices} devices")
    per_device = global_batch // devices
    load_start = os.getloadavg()

    form = parallel_form(parallel, devs)
    net = create_model(model, preset, axis_name=form.axis_name, dtype=dtype, conv_impl=conv_impl,
                       **(model_overrides or {}))
    cfg = net.config
    rng = jax.random.PRNGKey(seed)
    host_batch = _synthetic_batch(np.random.default_rng(seed), devices, per_device, cfg.frames,
                                  cfg.mels, cfg.classes)
    batch = form.put_batch(host_batch)
    # The state replicated on the chosen devices, as both forms' steps return it.
    state = form.put_state(create_train_state(net, rng, 1e-3, ema_decay))
    train_step, eval_step, compile_info = compile_steps(net, state, batch, alpha, form)
    eval_batch = {"logmel": batch["logmel"]}

    # --- steady-state train and eval steps (round-robin with the torch reference if asked)
    holder = {"state": state}

    def one_step():
        holder["state"], metrics = train_step(holder["state"], batch, rng)
        return holder["state"], metrics

    def one_eval():
        return eval_step(holder["state"], eval_batch)

    reference = _TorchReference(cfg, host_batch, alpha) if compare_torch else None
    train_calls = {"jax": one_step} | ({"torch": reference.train} if reference else {})
    eval_calls = {"jax": one_eval} | ({"torch": reference.eval} if reference else {})
    _timed_round_robin(train_calls, warmup)
    train_timed = _timed_round_robin(train_calls, steps)
    step_times = train_timed["jax"]["times"]
    t0 = time.perf_counter()
    pending = [one_step()[1] for _ in range(steps)]  # back-to-back, one sync: as in training
    jax.block_until_ready((holder["state"], pending))
    loop_s = time.perf_counter() - t0
    loss = float(np.asarray(jax.device_get(pending[-1]["loss"])))
    if not math.isfinite(loss):
        raise FloatingPointError(f"benchmark train step produced a non-finite loss {loss}")
    _timed_round_robin(eval_calls, warmup)
    eval_timed = _timed_round_robin(eval_calls, steps)
    eval_times = eval_timed["jax"]["times"]

    flops = flops_per_clip(cfg, train_step, eval_step, devices, global_batch)
    if profile_dir:
        with jax.profiler.trace(profile_dir):
            jax.block_until_ready([one_step()[1] for _ in range(min(steps, 3))])

    step_median = float(np.median(step_times))
    train_cps = global_batch / step_median
    device_kind = devs[0].device_kind
    accelerator = detect_accelerator(device_kind)
    peak_source = "--peak-tflops" if peak_tflops else (accelerator and f"table: {accelerator}")
    peak = peak_tflops or (PEAK_TFLOPS[accelerator][dtype] if accelerator else None)
    achieved = flops["analytic_train"] * train_cps / 1e12

    result: dict[str, Any] = {
        "model": model, "preset": preset, "dtype": dtype, "conv_impl": conv_impl,
        "parallel": parallel,
        "conv_impl_resolved": getattr(select_conv(conv_impl), "__name__", str(conv_impl)),
        "global_batch": global_batch, "per_device_batch": per_device, "num_devices": devices,
        "steps": steps, "warmup": warmup, "alpha": alpha, "ema_decay": ema_decay,
        "backend": jax.default_backend(), "device_kind": device_kind,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "host": {"cpu_count": os.cpu_count(), "machine": platform.machine(),
                 "load_avg_start": load_start, "load_avg_end": os.getloadavg()},
        "versions": _versions(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "compile": compile_info,
        "train_step_s": _stats(step_times),
        "train_step_host_usage": train_timed["jax"]["usage"],
        "train_clips_per_s": train_cps,
        "train_loop_clips_per_s": steps * global_batch / loop_s,
        "eval_step_s": _stats(eval_times),
        "eval_clips_per_s": global_batch / float(np.median(eval_times)),
        "final_loss": loss,
        "flops_per_clip": flops,
        "achieved_tflops": achieved,
        "achieved_tflops_xla": None if flops["xla_train"] is None else flops["xla_train"] * train_cps / 1e12,
        "peak_tflops_per_device": peak, "peak_source": peak_source,
        "mfu": None if peak is None else achieved / (peak * devices),
        "memory": _memory(devs, train_step),
        "input_pipeline_clips_per_s": None, "end_to_end_clips_per_s": None,
        "end_to_end_over_step_loop": None,
        "torch": None, "jax_over_torch_speed": None, "profile_dir": profile_dir,
    }
    if data_dir:
        result.update(_data_throughput(data_dir, snr, global_batch, form, steps, warmup,
                                       train_step, holder, rng, seed))
        result["end_to_end_over_step_loop"] = (result["end_to_end_clips_per_s"]
                                               / result["train_loop_clips_per_s"])
    if reference:
        result["torch"] = reference.report(train_timed["torch"], eval_timed["torch"])
        result["jax_over_torch_speed"] = result["torch"]["train_step_s"]["median"] / step_median
    result["memory"]["host_peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return result


def _versions() -> dict[str, str]:
    import flax
    import jaxlib
    import optax

    return {"python": platform.python_version(), "jax": jax.__version__,
            "jaxlib": jaxlib.__version__, "flax": flax.__version__, "optax": optax.__version__}


def _data_throughput(data_dir, snr, global_batch, form, steps, warmup, train_step, holder, rng,
                     seed) -> dict[str, float]:
    """Input pipeline alone, then pipeline + step, over the training folds 1-3 (clips/s)."""
    clips = load_folds(data_dir, snr, (1, 2, 3))
    stats = input_pipeline.compute_norm_stats(clips)

    def batches() -> Iterator[dict]:
        epoch = 0
        while True:  # as many epochs as the timed steps need
            yield from input_pipeline.train_batches(clips, stats, global_batch, seed, epoch,
                                                    len(form.local_devices))
            epoch += 1

    def timed(consume: Callable[[dict], Any]) -> float:
        it = form.prefetch(batches())
        try:
            for _ in range(warmup):
                jax.block_until_ready(consume(next(it)))
            t0 = time.perf_counter()
            out = [consume(next(it)) for _ in range(steps)]
            jax.block_until_ready((out, holder["state"]))
            return steps * global_batch / (time.perf_counter() - t0)
        finally:
            it.close()

    def step(batch):
        holder["state"], metrics = train_step(holder["state"], batch, rng)
        return metrics  # kept on device; read once at the end, as the trainer's log interval

    return {"input_pipeline_clips_per_s": timed(lambda b: b["logmel"]),
            "end_to_end_clips_per_s": timed(step),
            "data_clips": len(clips)}


class _TorchReference:
    """The PyTorch reference on the same global batch, as many intra-op threads as cores."""

    def __init__(self, cfg, host_batch: dict[str, np.ndarray], alpha: float):
        import torch

        from twostep_jax.benchmark import torch_reference

        self.threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        torch.set_num_threads(self.threads)
        torch.manual_seed(0)
        self.version = torch.__version__
        self.net = torch_reference.model_from_config(cfg)
        self.params = torch_reference.count_params(self.net)
        self.logmel = torch.from_numpy(host_batch["logmel"].reshape(-1, cfg.frames, cfg.mels))
        self.target = torch.from_numpy(host_batch["target"].reshape(-1, cfg.classes))
        self._train = torch_reference.make_train_step(self.net, alpha)
        self._eval = torch_reference.make_eval_step(self.net)

    def train(self) -> float:
        return self._train(self.logmel, self.target)

    def eval(self):
        return self._eval(self.logmel)

    def report(self, train_timed: dict, eval_timed: dict) -> dict[str, Any]:
        gb = self.logmel.shape[0]
        train_s, eval_s = _stats(train_timed["times"]), _stats(eval_timed["times"])
        return {"version": self.version, "threads": self.threads, "params": self.params,
                "train_step_s": train_s, "train_step_host_usage": train_timed["usage"],
                "train_clips_per_s": gb / train_s["median"],
                "eval_step_s": eval_s, "eval_clips_per_s": gb / eval_s["median"]}


# --------------------------------------------------------------------------- sweep


def run_sweep(batches: Sequence[int], dtypes: Sequence[str], device_counts: Sequence[int],
              parallels: Sequence[str] = ("pmap",), **kwargs) -> list[dict[str, Any]]:
    """`run_benchmark` over batch sizes × dtypes × device counts × parallel forms (device counts
    above the local count, or not dividing the batch, are skipped with a message on stderr)."""
    results = []
    for n in device_counts:
        if n > jax.local_device_count():
            print(f"sweep: skipping {n} devices (only {jax.local_device_count()})", file=sys.stderr)
            continue
        for dtype in dtypes:
            for gb in batches:
                if gb % n:
                    print(f"sweep: skipping batch {gb} on {n} devices (not divisible)", file=sys.stderr)
                    continue
                for form in parallels:
                    results.append(run_benchmark(global_batch=gb, dtype=dtype, devices=n,
                                                 parallel=form, **kwargs))
                    print(summary_line(results[-1]), file=sys.stderr, flush=True)
    return results
