"""twostep_jax.benchmark.hlo_stats: opcode counts of an HLO text, and both forms' train steps
compiled for 2 fake CPU devices (same collectives and convolutions)."""

import pytest

from twostep_jax.benchmark.hlo_stats import main, op_counts

HLO = """HloModule jit_step

%fused_computation (p0: f32[4]) -> f32[4] {
  %p0 = f32[4]{0} parameter(0)
  ROOT %m = f32[4]{0} multiply(%p0, %p0)
}

ENTRY %main (a: f32[4], b: f32[8]) -> (f32[4], f32[2]) {
  %a = f32[4]{0} parameter(0)
  %b = f32[8]{0} parameter(1)
  %ar = (f32[4]{0}, f32[8]{0}) all-reduce(%a, %b), channel_id=1, to_apply=%add
  %gte = f32[4]{0} get-tuple-element(%ar), index=0
  %f = f32[4]{0} fusion(%gte), kind=kLoop, calls=%fused_computation
  %s = f32[2]{0} slice(%b), slice={[0:2]}
  ROOT %t = (f32[4]{0}, f32[2]{0}) tuple(%f, %s)
}
"""


def test_op_counts_of_a_hand_written_module():
    c = op_counts(HLO)
    assert (c["parameter"], c["multiply"], c["all-reduce"], c["get-tuple-element"]) == (3, 1, 1, 1)
    assert (c["fusion"], c["slice"], c["tuple"], c["fused computations"]) == (1, 1, 1, 1)
    assert c["convolution"] == 0


def test_both_forms_compile_the_same_collectives(capsys):
    assert main(["--preset", "test_tiny", "--devices", "2", "--global-batch", "4",
                 "--ops", "all-reduce,convolution,fusion"]) == 0
    rows = {line.split("|")[1].strip(): [int(v) for v in line.split("|")[2:4]]
            for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "HLO" not in line}
    assert set(rows) == {"all-reduce", "convolution", "fusion", "fused computations"}
    # BatchNorm statistics and gradients are reduced over the devices in both forms.
    assert rows["all-reduce"][0] > 0 and rows["all-reduce"][0] == rows["all-reduce"][1]
    assert rows["convolution"][0] > 0 and rows["convolution"][0] == rows["convolution"][1]


def test_user_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--preset", "test_tiny", "--devices", "2", "--global-batch", "3"])
    assert e.value.code == 2 and "not divisible" in capsys.readouterr().err
