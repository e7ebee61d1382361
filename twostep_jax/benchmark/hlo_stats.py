"""What XLA made of each parallel form's train step: HLO instruction counts, side by side.

    python -m twostep_jax.benchmark.hlo_stats [--model 2apae] [--preset cpu_small] \
        [--global-batch 16] [--devices 8] [--dtype float32] [--ops all-reduce,fusion,...]

Compiles the project's train step in both forms (`train.parallel`: pmap and sharded) for the
same model and global batch, exactly as the benchmark does (same backend settings and flags),
and prints a Markdown table of how often each HLO opcode occurs in the optimized module (every
computation, fused ones included), plus the number of fused computations. It answers "do the two forms compile to the same
program?" when their step times differ: the collectives (`all-reduce`) and convolutions should
match, and the rest shows where the fusion decisions part.
"""

from __future__ import annotations

import argparse
import collections
import re
import sys

# `%name = shape opcode(operands), ...`; the shape may be a tuple, so match up to the opcode.
_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?[\w.\-]+\s*=\s*.*?\s([a-z][a-z0-9\-]*)\(", re.MULTILINE)
_FUSED_COMPUTATION = re.compile(r"calls=%?fused_computation", re.MULTILINE)
DEFAULT_OPS = ("all-reduce", "convolution", "fusion", "copy", "transpose", "slice", "concatenate")


def op_counts(hlo_text: str) -> collections.Counter:
    """Opcode -> number of instructions in an HLO module's text (all computations), plus
    `fused computations`: how many fusion instructions call an XLA-generated fused computation."""
    counts = collections.Counter(_INSTRUCTION.findall(hlo_text))
    counts["fused computations"] = len(_FUSED_COMPUTATION.findall(hlo_text))
    return counts


def train_step_hlo(form_name: str, model: str = "2apae", preset: str = "cpu_small",
                   global_batch: int = 16, devices: int = 8, dtype: str = "float32") -> str:
    """The optimized HLO text of the train step of form `form_name` on the first `devices`
    local devices, for a synthetic batch of `global_batch` clips."""
    # Imported here, not at the top: `main` must set the XLA flags before JAX starts its backend.
    import jax
    import numpy as np

    from twostep_jax.benchmark.run import _synthetic_batch, compile_steps
    from twostep_jax.model.models import create_model
    from twostep_jax.train.parallel import parallel_form
    from twostep_jax.train.step import create_train_state

    available = jax.local_devices()
    if devices > len(available):
        raise ValueError(f"--devices {devices} but only {len(available)} local device(s); on a CPU "
                         f"host run with XLA_FLAGS=--xla_force_host_platform_device_count={devices}")
    if global_batch % devices:
        raise ValueError(f"global batch {global_batch} is not divisible by {devices} devices")
    form = parallel_form(form_name, available[:devices])
    net = create_model(model, preset, axis_name=form.axis_name, dtype=dtype)
    cfg = net.config
    host = _synthetic_batch(np.random.default_rng(0), devices, global_batch // devices,
                            cfg.frames, cfg.mels, cfg.classes)
    state = form.put_state(create_train_state(net, jax.random.PRNGKey(0), 1e-3))
    train, _, _ = compile_steps(net, state, form.put_batch(host), 0.001, form)
    return train.as_text()


def markdown_table(counts: dict[str, collections.Counter], ops: tuple[str, ...]) -> str:
    forms = list(counts)
    lines = ["| HLO | " + " | ".join(forms) + " |", "|---|" + "---|" * len(forms)]
    for op in (*ops, "fused computations"):
        lines.append(f"| {op} | " + " | ".join(str(counts[f][op]) for f in forms) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m twostep_jax.benchmark.hlo_stats", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    from twostep_jax.config import DTYPES, MODEL_NAMES, PRESETS

    p.add_argument("--model", default="2apae", choices=MODEL_NAMES)
    p.add_argument("--preset", default="cpu_small", choices=PRESETS)
    p.add_argument("--global-batch", type=int, default=16)
    p.add_argument("--devices", type=int, default=8)
    p.add_argument("--dtype", default="float32", choices=DTYPES)
    p.add_argument("--ops", default=",".join(DEFAULT_OPS), help="comma-separated HLO opcodes to count")
    from twostep_jax.backend import add_eigen_conv_flag

    add_eigen_conv_flag(p)
    args = p.parse_args(argv)
    if args.global_batch < 1 or args.devices < 1:
        p.error("--global-batch and --devices must be positive")
    ops = tuple(o.strip() for o in args.ops.split(",") if o.strip())
    from twostep_jax import backend

    backend.configure(args.devices, args.xla_cpu_eigen_conv)  # as the benchmark compiles
    try:
        counts = {f: op_counts(train_step_hlo(f, args.model, args.preset, args.global_batch,
                                              args.devices, args.dtype)) for f in ("pmap", "sharded")}
    except ValueError as e:
        p.error(str(e))
    print(f"train step of {args.model}/{args.preset}, {args.dtype}, global batch {args.global_batch} "
          f"on {args.devices} device(s):\n")
    print(markdown_table(counts, ops))
    return 0


if __name__ == "__main__":
    sys.exit(main())
