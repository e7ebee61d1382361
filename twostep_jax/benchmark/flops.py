"""FLOPs and peak throughput: what MFU is measured against.

* `PEAK_TFLOPS` / `detect_accelerator`: published dense peaks per chip and dtype;
* `analytic_flops`: conv/dense multiply-adds x 2 counted from a `ModelConfig` (the heads count
  their own, `model.heads.HEADS[...].macs`);
* `xla_flops` / `flops_per_clip`: XLA's cost analysis of the compiled steps, next to the
  analytic count. XLA counts only the taps that meet real (non-padding) input, so a 3x3 'same'
  conv on 311x64 maps reads ~1.25 % below the dense count; elementwise work (BatchNorm, ReLU,
  pooling, softmax) is in XLA's count and not in the analytic one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from twostep_jax.config import ATROUS
from twostep_jax.model.heads import HEADS

# --------------------------------------------------------------------------- peak TFLOP/s table

# Published dense (no-sparsity) peak TFLOP/s per chip. "float32" is what XLA runs a float32
# conv/matmul on at JAX's default precision: TF32 tensor cores on A100/H100/H200, one bfloat16
# pass on TPU MXUs. Sources: NVIDIA H100/H200/A100 datasheets (dense = half the "with sparsity"
# figure), Google Cloud TPU v4/v5e/v5p system-architecture pages.
PEAK_TFLOPS: dict[str, dict[str, float]] = {
    "H100 SXM": {"bfloat16": 989.4, "float32": 494.7},
    "H100 PCIe": {"bfloat16": 756.0, "float32": 378.0},
    "H200": {"bfloat16": 989.4, "float32": 494.7},
    "A100": {"bfloat16": 312.0, "float32": 156.0},
    "TPU v4": {"bfloat16": 275.0, "float32": 275.0},
    "TPU v5e": {"bfloat16": 197.0, "float32": 197.0},
    "TPU v5p": {"bfloat16": 459.0, "float32": 459.0},
}


def detect_accelerator(device_kind: str) -> str | None:
    """`PEAK_TFLOPS` key for a `jax.Device.device_kind`, or None if unknown (e.g. a CPU)."""
    kind = device_kind.lower()
    if "h200" in kind:
        return "H200"
    if "h100" in kind:
        if "nvl" in kind:  # a different board with its own peaks: not in the table
            return None
        return "H100 PCIe" if "pcie" in kind else "H100 SXM"
    if "a100" in kind:
        return "A100"
    if re.search(r"tpu v5 ?(lite|e)", kind):
        return "TPU v5e"
    if re.search(r"tpu v5p?$", kind.strip()):
        return "TPU v5p"
    if kind.strip() == "tpu v4":
        return "TPU v4"
    return None


# --------------------------------------------------------------------------- analytic FLOPs


def analytic_flops(config) -> dict[str, Any]:
    """FLOPs per clip of a `ModelConfig`, counting conv and dense multiply-adds × 2.

    Convolutions are counted densely (k·k·Cin·Cout per output position, padding taps included),
    the usual convention; bias adds and elementwise work are not counted. `train` = 3 × forward
    (backward = input gradient + weight gradient, each the forward's cost).

    Returns {"forward", "eval", "train", "breakdown": {"backbone", "head", "decoder"}} (FLOPs
    per clip); "eval" is the forward without the decoder, which inference does not need.
    At the paper's sizes the released 2APAE is ≈70.4 GFLOP forward, ≈211 GFLOP train.
    """
    positions = config.frames * config.mels
    k2 = config.kernel_size ** 2

    def conv_chain(widths: Sequence[int], kernel_area: int, convs_per_stage: int) -> int:
        macs, cin = 0, widths[0]
        for cout in widths[1:]:
            for i in range(convs_per_stage):
                macs += kernel_area * (cin if i == 0 else cout) * cout
            cin = cout
        return macs * positions

    per_stage = 1 if config.backbone == ATROUS else 2
    backbone = conv_chain((1, *config.channels), k2, per_stage)
    head = HEADS[config.head].macs(config)  # each head counts its own multiply-adds
    decoder = conv_chain((config.channels[-1], *config.decoder_channels, 1), 9, 2) if config.decoder else 0
    breakdown = {"backbone": 2 * backbone, "head": 2 * head, "decoder": 2 * decoder}
    forward = sum(breakdown.values())
    return {"forward": forward, "eval": forward - breakdown["decoder"], "train": 3 * forward,
            "breakdown": breakdown}


def xla_flops(compiled) -> float | None:
    """FLOPs of one execution per device from XLA's cost analysis (None if not reported)."""
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):  # older jax: one dict per program
        cost = cost[0] if cost else None
    flops = (cost or {}).get("flops")
    return float(flops) if flops and flops > 0 else None


def flops_per_clip(config, train, evaluate, devices: int, global_batch: int) -> dict[str, Any]:
    """Analytic and XLA-counted FLOPs per clip, and their ratios.

    XLA's cost analysis describes one device's program, so it is scaled by devices / global
    batch. The eval step returns only the clip and frame probabilities, so XLA drops the decoder
    from it: `xla_eval` compares with `analytic_eval` (forward without the decoder), while the
    train step's forward includes it (`analytic_forward`).
    """
    analytic = analytic_flops(config)
    scale = lambda f: None if f is None else f * devices / global_batch  # noqa: E731
    out = {"analytic_forward": analytic["forward"], "analytic_eval": analytic["eval"],
           "analytic_train": analytic["train"], "analytic_breakdown": analytic["breakdown"],
           "xla_eval": scale(xla_flops(evaluate)), "xla_train": scale(xla_flops(train))}
    for kind in ("eval", "train"):
        x = out[f"xla_{kind}"]
        out[f"xla_over_analytic_{kind}"] = None if x is None else x / out[f"analytic_{kind}"]
    return out
