"""scripts/gpu_check.sh --cpu-dry-run (benchmark.gpu_check at test_tiny size) on a host without
TensorFlow, librosa, soundfile, tqdm or tensorboardX (imports blocked in the subprocess, as on the
target GPU host): every benchmark row, the trace, and a packed run that evaluate.py restores here."""

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.fixtures import evaluate_cli
from twostep_jax.benchmark.gpu_check import OPTIONAL, main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dry_run(builtin_dataset, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gpu_check")
    # sitecustomize runs at interpreter start: `import tensorflow` etc. fail as if not installed.
    (tmp / "block").mkdir()
    (tmp / "block" / "sitecustomize.py").write_text(
        f"import sys\nfor name in {OPTIONAL!r}:\n    sys.modules[name] = None\n")
    env = dict(os.environ, PYTHONPATH=str(tmp / "block"), PYTHON=sys.executable)
    env.pop("XLA_FLAGS", None)
    env.pop("TWOSTEP_DATA_READER", None)
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), str(tmp / "out"),
                           "--data", builtin_dataset, "--cpu-dry-run"],
                          cwd=tmp, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return tmp / "out", json.loads((tmp / "out" / "gpu_check.json").read_text())


def test_benchmarks_every_dtype_and_form_without_the_optional_modules(dry_run):
    out, report = dry_run
    assert set(report["host"]["missing_optional"]) == set(OPTIONAL)
    assert report["mode"] == "cpu-dry-run" and report["skipped"] == [] and report["errors"] == []
    rows = {(r["dtype"], r["parallel"]): r for r in report["benchmarks"]}
    assert set(rows) == {(d, f) for d in ("bfloat16", "float32") for f in ("pmap", "sharded")}
    for r in rows.values():
        assert r["preset"] == "test_tiny" and r["global_batch"] == 8
        assert r["compile"]["train_compile_s"] > 0 and r["train_clips_per_s"] > 0
        assert r["eval_clips_per_s"] > 0 and r["achieved_tflops"] > 0
    md = (out / "gpu_check.md").read_text()
    assert md.count("| 2apae | test_tiny |") == 4
    with tarfile.open(out / "trace.tgz") as tar:
        assert any(n.endswith(".xplane.pb") for n in tar.getnames())


def test_training_run_is_packed_and_evaluate_restores_it_here(dry_run, builtin_dataset, tmp_path):
    out, report = dry_run
    run = report["train"]
    assert run["epochs_completed"] == 1 and run["packed"] == ["train_run.tgz"]
    assert run["config"]["model_config"]["dtype"] == "bfloat16"
    with tarfile.open(out / "train_run.tgz") as tar:
        names = tar.getnames()
        assert not any("checkpoints/latest" in n for n in names)  # only the best travels back
        tar.extractall(tmp_path, filter="data")
    assert evaluate_cli("run", "--workdir", tmp_path / "train_run", "--data", builtin_dataset) == 0
    assert json.loads((tmp_path / "train_run" / "eval_test.json").read_text())["clip"]["micro_ap"] > 0


def test_missing_dataset_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main([str(tmp_path / "out"), "--data", str(tmp_path / "nothing")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("scripts/gpu_check.sh: error: no prepared dataset") and "data_prep" in err


def test_configurations_run_smaller_batches_first_and_subsets_parse(builtin_dataset):
    from twostep_jax.benchmark.gpu_check import _configurations, _plan, parse_args

    order = [(c["dtype"], c["global_batch"], c["parallel"]) for c in _configurations(_plan(False))]
    assert len(order) == 12 and order[:2] == [("bfloat16", 24, "pmap"), ("bfloat16", 24, "sharded")]
    assert [b for _, b, _ in order] == sorted(b for _, b, _ in order)  # 384 (longest compile) last
    assert order.index(("float32", 96, "pmap")) < order.index(("bfloat16", 384, "pmap"))
    args = parse_args(["out", "--data", builtin_dataset, "--dtypes", "float32", "--batches", "96,24"])
    subset = _configurations(dict(_plan(False), dtypes=args.dtypes, batches=args.batches))
    assert [(c["dtype"], c["global_batch"]) for c in subset] == [("float32", 24)] * 2 + [("float32", 96)] * 2


@pytest.mark.parametrize("flags, message", [(["--dtypes", "float16"], "unknown float16"),
                                            (["--batches", "0,x"], "0, x is not a positive integer")])
def test_bad_subset_flags_are_one_line_errors(builtin_dataset, flags, message, capsys):
    from twostep_jax.benchmark.gpu_check import parse_args

    with pytest.raises(SystemExit) as e:
        parse_args(["out", "--data", builtin_dataset] + flags)
    assert e.value.code == 2 and message in capsys.readouterr().err
