"""Where a profiled step spends its device time: kernel time by kind, from a `jax.profiler` trace.

    python -m twostep_jax.benchmark.trace_summary TRACE [--top N] [--steps S]

TRACE is a trace folder (`--profile DIR` of the benchmark), a `*.trace.json.gz` in it, or the
`trace.tgz` that `scripts/gpu_check.sh` packs. It reads the Chrome-trace JSON the profiler
writes beside the xplane (no TensorBoard or TensorFlow needed), takes the kernels on the device
streams (`/device:GPU:N`, ops on TPU), and prints a Markdown table: the span from the first
kernel's start to the last one's end, the time any kernel ran (busy) and the gaps, then busy
time by kind (convolutions and matrix products in vendor libraries, XLA's own fusions, copies,
other) and the top kernels by name. It answers "is the step host-bound, and is the rest
arithmetic or memory traffic" when the MFU misses its target.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import io
import json
import os
import re
import sys
import tarfile
from typing import Any

# Matched in this order against the lower-cased kernel name; the first match is its kind.
KINDS: tuple[tuple[str, str], ...] = (
    ("conv / matmul (library)", r"xmma|gemm|cudnn|cutlass|gmma|implicit|wgrad|dgrad|fprop|cublas|nhwc"),
    ("copy / memset", r"memcpy|memset|copy_|^copy"),
    ("XLA fusion", r"fusion|reduce|transpose|convert|loop_|input_|slice|concatenate|pad"),
)


def kind_of(name: str) -> str:
    low = name.lower()
    return next((k for k, pattern in KINDS if re.search(pattern, low)), "other")


def load_events(path: str) -> list[dict[str, Any]]:
    """The `traceEvents` of the one Chrome trace under `path` (folder, .json.gz or .tgz)."""
    if path.endswith((".tgz", ".tar.gz")):
        with tarfile.open(path) as tar:
            names = [m for m in tar.getmembers() if m.name.endswith(".trace.json.gz")]
            if len(names) != 1:
                raise ValueError(f"{path}: expected one *.trace.json.gz inside, found {len(names)}")
            data = tar.extractfile(names[0]).read()
        return json.load(gzip.open(io.BytesIO(data)))["traceEvents"]
    if os.path.isdir(path):
        found = glob.glob(os.path.join(path, "**", "*.trace.json.gz"), recursive=True)
        if len(found) != 1:
            raise ValueError(f"{path}: expected one *.trace.json.gz under it, found {len(found)}")
        path = found[0]
    with gzip.open(path) as f:
        return json.load(f)["traceEvents"]


def summarize(events: list[dict[str, Any]], top: int = 15, steps: int = 3) -> dict[str, Any]:
    """Kernel time on the device planes: span, busy, gaps, by kind and by name (microseconds)."""
    process = {e["pid"]: e["args"]["name"] for e in events
               if e.get("ph") == "M" and e.get("name") == "process_name"}
    devices = {pid for pid, name in process.items() if name.startswith("/device:")}
    kernels = [e for e in events if e.get("ph") == "X" and e.get("pid") in devices and e.get("dur")]
    if not kernels:
        raise ValueError(f"no device kernels in the trace (processes: {sorted(process.values())})")
    start = min(e["ts"] for e in kernels)
    span = max(e["ts"] + e["dur"] for e in kernels) - start
    busy = _union_length([(e["ts"], e["ts"] + e["dur"]) for e in kernels])
    by_kind: collections.Counter = collections.Counter()
    by_name: collections.Counter = collections.Counter()
    for e in kernels:
        by_kind[kind_of(e["name"])] += e["dur"]
        by_name[e["name"]] += e["dur"]
    total = sum(by_kind.values())
    return {"devices": sorted(process[p] for p in devices), "kernels": len(kernels),
            "span_us": span, "busy_us": busy, "kernel_sum_us": total, "steps": steps,
            "by_kind": by_kind.most_common(), "top": by_name.most_common(top)}


def _union_length(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of [start, end) intervals (kernels on several streams overlap)."""
    length, reach = 0.0, float("-inf")
    for lo, hi in sorted(intervals):
        if hi > reach:
            length += hi - max(lo, reach)
            reach = hi
    return length


def markdown(s: dict[str, Any]) -> str:
    ms, per = 1e-3, 1e-3 / s["steps"]
    lines = [f"{', '.join(s['devices'])}: {s['kernels']} kernels; span {s['span_us'] * ms:.1f} ms "
             f"({s['span_us'] * per:.1f} ms per step over {s['steps']}), device busy "
             f"{100 * s['busy_us'] / s['span_us']:.1f} % of it", "",
             "| kernel kind | ms per step | share of kernel time |", "|---|---|---|"]
    lines += [f"| {k} | {v * per:.2f} | {100 * v / s['kernel_sum_us']:.1f} % |" for k, v in s["by_kind"]]
    lines += ["", "| kernel | kind | ms per step |", "|---|---|---|"]
    lines += [f"| `{n[:80]}` | {kind_of(n)} | {v * per:.2f} |" for n, v in s["top"]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m twostep_jax.benchmark.trace_summary",
                                description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("trace", help="trace folder, *.trace.json.gz, or gpu_check's trace.tgz")
    p.add_argument("--top", type=int, default=15, help="kernels listed by name (default 15)")
    p.add_argument("--steps", type=int, default=3, help="steps in the trace (default 3, as profiled)")
    args = p.parse_args(argv)
    if not os.path.exists(args.trace):
        p.error(f"{args.trace}: no such file or folder")
    try:
        summary = summarize(load_events(args.trace), top=args.top, steps=args.steps)
    except (ValueError, OSError, KeyError, tarfile.TarError, json.JSONDecodeError) as e:
        p.error(f"{args.trace}: {e}")
    print(markdown(summary), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
