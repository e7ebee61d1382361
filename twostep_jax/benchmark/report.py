"""Benchmark results as text: one summary line per result and a Markdown table for
BENCHMARKS.md."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

def _fmt(x, spec: str) -> str:
    return "–" if x is None else format(x, spec)


def markdown_table(results: Sequence[dict[str, Any]]) -> str:
    """One row per result: the figures a BENCHMARKS.md table needs."""
    head = ("| model | preset | device | devices | parallel | dtype | conv | batch | compile s | step s median "
            "(p10–p90) | train clips/s | eval clips/s | e2e clips/s | GFLOP/clip train (XLA) "
            "| TFLOP/s | MFU | torch step s | JAX/torch |")
    rows = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        s, f, t = r["train_step_s"], r["flops_per_clip"], r["torch"]
        rows.append(
            f"| {r['model']} | {r['preset']} | {r['device_kind']} | {r['num_devices']} "
            f"| {r.get('parallel', 'pmap')} | {r['dtype']} "
            f"| {r['conv_impl']} | {r['global_batch']} | {r['compile']['train_compile_s']:.1f} "
            f"| {s['median']:.3f} ({s['p10']:.3f}–{s['p90']:.3f}) | {r['train_clips_per_s']:.2f} "
            f"| {r['eval_clips_per_s']:.2f} | {_fmt(r['end_to_end_clips_per_s'], '.2f')} "
            f"| {f['analytic_train'] / 1e9:.1f} ({_fmt(f['xla_train'] and f['xla_train'] / 1e9, '.1f')}) "
            f"| {r['achieved_tflops']:.3f} | {_fmt(r['mfu'] and 100 * r['mfu'], '.1f')}{'' if r['mfu'] is None else ' %'} "
            f"| {_fmt(t and t['train_step_s']['median'], '.3f')} | {_fmt(r['jax_over_torch_speed'], '.2f')} |")
    return "\n".join(rows) + "\n"


def summary_line(r: dict[str, Any]) -> str:
    s = r["train_step_s"]
    line = (f"{r['model']}/{r['preset']} {r['dtype']} conv={r['conv_impl']} batch={r['global_batch']} "
            f"devices={r['num_devices']} {r.get('parallel', 'pmap')} ({r['device_kind']}): compile {r['compile']['train_compile_s']:.1f}s, "
            f"step {s['median']:.4f}s (p10 {s['p10']:.4f}, p90 {s['p90']:.4f}), "
            f"train {r['train_clips_per_s']:.2f} clips/s, eval {r['eval_clips_per_s']:.2f} clips/s, "
            f"{r['achieved_tflops']:.3f} TFLOP/s, MFU {_fmt(r['mfu'] and 100 * r['mfu'], '.1f')}")
    if r["end_to_end_clips_per_s"] is not None:
        line += (f", pipeline {r['input_pipeline_clips_per_s']:.1f} clips/s, end-to-end "
                 f"{r['end_to_end_clips_per_s']:.2f} clips/s ({100 * r['end_to_end_over_step_loop']:.0f} % of step loop)")
    if r["torch"] is not None:
        line += (f", torch step {r['torch']['train_step_s']['median']:.4f}s, "
                 f"JAX/torch speed {r['jax_over_torch_speed']:.2f}x")
    return line
