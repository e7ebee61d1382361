"""twostep_jax.benchmark.flops: analytic FLOPs of the released model, accelerator peaks."""

import pytest

from twostep_jax import model_config
from twostep_jax.benchmark.flops import PEAK_TFLOPS, analytic_flops, detect_accelerator


def test_analytic_flops_of_the_released_model():
    f = analytic_flops(model_config("2apae", "paper"))
    # encoder + class conv + attention, decoder: conv MACs per position x 311 x 64 positions.
    assert f["breakdown"]["decoder"] == 2 * 580_905 * 311 * 64
    assert f["forward"] == sum(f["breakdown"].values()) and f["train"] == 3 * f["forward"]
    assert f["eval"] == f["forward"] - f["breakdown"]["decoder"]
    atrous = analytic_flops(model_config("atrous_ap", "paper"))
    assert atrous["breakdown"]["backbone"] == 2 * 25 * (64 + 64 * 128 + 128 * 256) * 311 * 64


@pytest.mark.parametrize("kind,expected", [
    ("NVIDIA H100 80GB HBM3", "H100 SXM"), ("NVIDIA H100 PCIe", "H100 PCIe"), ("NVIDIA H200", "H200"),
    ("NVIDIA A100-SXM4-80GB", "A100"), ("TPU v4", "TPU v4"), ("TPU v5 lite", "TPU v5e"),
    ("TPU v5p", "TPU v5p"), ("TPU v5", "TPU v5p"), ("cpu", None), ("NVIDIA H100 NVL", None)])
def test_detect_accelerator(kind, expected):
    assert detect_accelerator(kind) == expected
    if expected:
        assert set(PEAK_TFLOPS[expected]) == {"float32", "bfloat16"}
