"""The package layout's rules, checked on the source: imports only point down, every module has
its place, constants and registries are defined once, and importing the package never imports
TensorFlow."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Every module of the package, lowest first: a module may import only modules before it (lazy
# imports inside functions included). Sub-package __init__ files hold docstrings only.
ORDER = [
    "config", "backend", "fileio", "progress", "losses",
    "model.ops", "model.layers", "model.heads", "model.models",
    "data.features", "data.tfrecord", "data.dataset", "data.input_pipeline",
    "metrics.clip", "metrics.sed",
    "viz.figures",
    "train.workdir", "train.checkpoint", "train.metric_writer", "train.step", "train.parallel", "train.predict",
    "train.loop",
    "evaluation.restore", "evaluation.postprocess", "evaluation.score", "evaluation.report", "evaluation.clip_figures",
    "evaluation.tagging",
    "viz.tables", "flags", "sweep",
    "benchmark.flops", "benchmark.report", "benchmark.torch_reference", "benchmark.run",
    "benchmark.pipeline", "benchmark.__main__", "benchmark.gpu_check", "benchmark.trace_summary",
    "benchmark.hlo_stats",
]
ORDER = ["twostep_jax." + m for m in ORDER]
# What data_prep may use of the package (it sits beside it, reading and writing datasets).
DATA_PREP_MAY_IMPORT = ("twostep_jax.data.", "twostep_jax.fileio", "twostep_jax.progress")


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _modules(package: str) -> dict[str, Path]:
    return {_module_name(p): p for p in sorted((ROOT / package).rglob("*.py"))}


def _project_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import of twostep_jax / data_prep in a file (resolving
    `from pkg import submodule` to the submodule)."""
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                is_module = (ROOT / Path(*sub.split("."))).with_suffix(".py").exists() or (
                    ROOT / Path(*sub.split(".")) / "__init__.py").exists()
                found.append((node.lineno, sub if is_module else node.module))
    return [(n, m) for n, m in found if m.split(".")[0] in ("twostep_jax", "data_prep")]


def test_every_module_has_a_place_in_the_order():
    modules = {m for m in _modules("twostep_jax") if m.count(".") and not m.endswith("__init__")}
    packages = {m for m, p in _modules("twostep_jax").items() if p.name == "__init__.py"}
    assert sorted(modules - packages - set(ORDER)) == [], "add new modules to ORDER"
    assert sorted(set(ORDER) - modules) == [], "ORDER names modules that do not exist"
    for package in packages - {"twostep_jax"}:
        tree = ast.parse(_modules("twostep_jax")[package].read_text())
        assert all(isinstance(n, ast.Expr) for n in tree.body), f"{package}/__init__.py must hold a docstring only"


def test_imports_only_point_down():
    rank = {m: i for i, m in enumerate(ORDER)}
    wrong = []
    for module, path in _modules("twostep_jax").items():
        if module not in rank:
            continue
        for line, target in _project_imports(path):
            if target not in rank or rank[target] >= rank[module]:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert wrong == []


def test_data_prep_imports_only_data_fileio_and_progress():
    wrong = []
    for module, path in _modules("data_prep").items():
        for line, target in _project_imports(path):
            if target.startswith("twostep_jax") and not target.startswith(DATA_PREP_MAY_IMPORT):
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert wrong == []


def test_each_public_constant_is_defined_once():
    where = defaultdict(list)
    for package in ("twostep_jax", "data_prep"):
        for module, path in _modules(package).items():
            for node in ast.parse(path.read_text()).body:
                targets = node.targets if isinstance(node, ast.Assign) else (
                    [node.target] if isinstance(node, ast.AnnAssign) else [])
                for t in targets:
                    if isinstance(t, ast.Name) and re.fullmatch(r"[A-Z][A-Z0-9_]+", t.id):
                        where[t.id].append(module)
    assert {name: mods for name, mods in where.items() if len(mods) > 1} == {}


def test_one_model_registry():
    from twostep_jax import config
    from twostep_jax.model.heads import HEADS

    assert set(HEADS) == set(config.HEAD_NAMES)
    assert config.MODEL_NAMES == tuple(config.MODELS)
    assert set(config.BASELINES) == set(config.MODEL_NAMES) - {"2apae"}
    # No module spells a model name list of its own.
    spelled = re.compile(r"""["']gap["']\s*,\s*["']gmp["']|["']gmp["']\s*,\s*["']gap["']""")
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "twostep_jax").rglob("*.py")
                 if p.name != "config.py" and spelled.search(p.read_text())]
    assert offenders == []


def test_importing_the_package_never_imports_tensorflow():
    code = ("import sys, twostep_jax, twostep_jax.sweep, twostep_jax.evaluation.tagging, "
            "twostep_jax.benchmark.run, twostep_jax.data.dataset; "
            "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"
