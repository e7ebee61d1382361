"""benchmark.trace_summary on a hand-made Chrome trace: span, busy time (overlaps counted once),
kinds, and the command line on a packed trace.tgz as scripts/gpu_check.sh writes it."""

import gzip
import io
import json
import tarfile

import pytest

from twostep_jax.benchmark import trace_summary

EVENTS = [
    {"ph": "M", "name": "process_name", "pid": 1, "args": {"name": "/device:GPU:0"}},
    {"ph": "M", "name": "process_name", "pid": 7, "args": {"name": "/host:CPU"}},
    # Two streams: the fusion overlaps the convolution by 10 us; a 30 us gap follows.
    {"ph": "X", "pid": 1, "tid": 1, "ts": 100, "dur": 50, "name": "sm90_xmma_fprop_implicit_gemm_bf16"},
    {"ph": "X", "pid": 1, "tid": 2, "ts": 140, "dur": 20, "name": "loop_multiply_fusion_3"},
    {"ph": "X", "pid": 1, "tid": 1, "ts": 190, "dur": 10, "name": "input_reduce_select_fusion_7"},
    {"ph": "X", "pid": 1, "tid": 1, "ts": 200, "dur": 4, "name": "MemcpyD2D"},
    {"ph": "X", "pid": 7, "tid": 1, "ts": 0, "dur": 1000, "name": "PjitFunction(train_step)"},
]


def test_span_busy_and_kinds_count_device_kernels_only():
    s = trace_summary.summarize(EVENTS, steps=2)
    assert s["devices"] == ["/device:GPU:0"] and s["kernels"] == 4
    assert s["span_us"] == 104 and s["busy_us"] == 60 + 14  # [100,160) + [190,204)
    assert dict(s["by_kind"]) == {"conv / matmul (library)": 50, "XLA fusion": 30, "copy / memset": 4}
    assert s["top"][0] == ("sm90_xmma_fprop_implicit_gemm_bf16", 50)
    md = trace_summary.markdown(s)
    assert "(0.1 ms per step over 2), device busy 71.2 % of it" in md
    assert "| conv / matmul (library) | 0.03 | 59.5 % |" in md


def test_no_device_plane_is_a_clear_error():
    with pytest.raises(ValueError, match="no device kernels"):
        trace_summary.summarize([e for e in EVENTS if e.get("pid") != 1])


def _tgz(path, events):
    blob = gzip.compress(json.dumps({"traceEvents": events}).encode())
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("trace/plugins/profile/x/vm.trace.json.gz")
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))


def test_cli_reads_the_packed_trace(tmp_path, capsys):
    _tgz(tmp_path / "trace.tgz", EVENTS)
    assert trace_summary.main([str(tmp_path / "trace.tgz"), "--steps", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("/device:GPU:0: 4 kernels; span 0.1 ms") and "| `MemcpyD2D` | copy / memset |" in out


def test_cli_missing_file_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        trace_summary.main([str(tmp_path / "none.tgz")])
    assert e.value.code == 2 and "no such file" in capsys.readouterr().err
