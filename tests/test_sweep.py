"""twostep_jax.sweep: the grids, resuming a sweep (finished runs skipped, tables written), going
on after a diverged run."""

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.fixtures import evaluate_cli, tiny_cell


def test_sweep_skips_finished_runs_and_writes_tables(tiny_run, monkeypatch, capsys):
    from twostep_jax import sweep

    finished = tiny_run.cell
    new = tiny_cell("gap", 0.0)
    monkeypatch.setitem(sweep.GRIDS, "unit", lambda: [finished, new])
    monkeypatch.setattr(sweep, "use_compilation_cache", lambda runs_dir: None)  # no global jax config
    calls = []

    def fake_cell(cell, data_dir, runs_dir):
        # Stands in for training: a finished run folder with the tiny run's metrics.
        calls.append(cell)
        workdir = Path(cell.workdir(runs_dir))
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "run_config.json").write_text(json.dumps(cell.config(data_dir).to_dict()))
        (workdir / "eval_test.json").write_text(json.dumps(tiny_run.report))
        return tiny_run.report

    markdown = sweep.run_sweep("unit", str(tiny_run.data_dir), str(tiny_run.runs_dir), run_cell=fake_cell)
    assert calls == [new]
    out = capsys.readouterr().out
    assert "2 runs, 1 already finished, 1 to run" in out and "[1/1] gap α=0 snr20 fold1" in out
    assert "| 2APAE |" in markdown and "| GAP |" in markdown
    for name in ("table_iv.md", "table_iv.csv", "table_iv.png", "table_v.md"):
        assert (tiny_run.runs_dir / name).is_file()
    assert Path(new.workdir(str(tiny_run.runs_dir))) == tiny_run.runs_dir / "gap_a0" / "snr20" / "fold1"

    sweep.run_sweep("unit", str(tiny_run.data_dir), str(tiny_run.runs_dir), run_cell=fake_cell)
    assert calls == [new]  # nothing left to run
    assert evaluate_cli("--table", tiny_run.runs_dir) == 0
    assert "Table IV" in capsys.readouterr().out


def test_grids():
    from twostep_jax import sweep

    paper = sweep.grid("paper_table4")
    assert len(paper) == 8 * 3 * 4 and {c.preset for c in paper} == {"paper"}
    assert {(c.model, c.alpha) for c in paper} == {
        ("2apae", 0.001), ("2apae", 0.0), ("2apae", 0.01), ("gap", 0.0), ("gmp", 0.0), ("gwrp", 0.0),
        ("atrous_ap", 0.0), ("attention", 0.0)}
    assert len({c.workdir("R") for c in paper}) == len(paper)
    assert paper[0].workdir("R") == os.path.join("R", "2apae_a0.001", "snr0", "fold1")
    quick = sweep.grid("quick")
    assert {c.preset for c in quick} == {"cpu_small"}
    for cell in quick:
        cell.config("DATA")  # every cell is a valid TrainConfig
    table = sweep.grid("cpu_table")
    assert len(table) == 5 * 2 * 3 and {c.seed for c in table} == {0, 1, 2}
    assert {(c.model, c.alpha) for c in table} == {
        ("2apae", 0.001), ("2apae", 0.0), ("gap", 0.0), ("gmp", 0.0), ("atrous_ap", 0.0)}
    assert len({c.workdir("R") for c in table}) == len(table)
    assert table[0].workdir("R") == os.path.join("R", "2apae_a0.001", "snr0", "fold1", "seed0")
    assert [c.config("DATA").seed for c in table[:11:10]] == [0, 1]
    e12 = sweep.grid("cpu_table_e12")
    assert len(e12) == len(table) and {c.config("DATA").epochs for c in e12} == {12}
    assert {c.config("DATA").ema_decay for c in e12} == {0.99}
    # every 0 dB run (all seeds) before any 20 dB run, so a part-built grid answers the 0 dB target
    assert [c.snr for c in e12] == [0] * 15 + [20] * 15
    assert {(c.model, c.alpha, c.seed) for c in e12[:15]} == {(c.model, c.alpha, c.seed) for c in table}
    e48 = sweep.grid("cpu_table_e48")
    assert [(c.model, c.alpha, c.snr, c.seed) for c in e48] == [(c.model, c.alpha, c.snr, c.seed) for c in e12]
    assert {(c.config("DATA").epochs, c.config("DATA").plateau_factor, c.config("DATA").ema_decay)
            for c in e48} == {(48, 1.0, 0.99)}
    loc = sweep.grid("localisation")
    forms = [c.config("DATA").model_config().attention_form for c in loc if c.model == "2apae"]
    assert forms == ["released_code", "paper_equations", "content"]
    assert loc[2].workdir("R") == os.path.join("R", "2apae-content_a0.001", "snr20", "fold1")
    with pytest.raises(ValueError, match="unknown sweep"):
        sweep.grid("nope")


def test_sweep_goes_on_after_a_diverged_run(tiny_run, tmp_path, monkeypatch):
    from twostep_jax import sweep
    from twostep_jax.train.loop import NonFiniteLossError

    runs_dir = tmp_path / "runs"
    shutil.copytree(tiny_run.workdir, Path(tiny_run.cell.workdir(str(runs_dir))))  # a finished cell
    diverging, after = tiny_cell("gmp", 0.0), tiny_cell("gwrp", 0.0)
    monkeypatch.setitem(sweep.GRIDS, "unit", lambda: [tiny_run.cell, diverging, after])
    monkeypatch.setattr(sweep, "use_compilation_cache", lambda runs_dir: None)
    calls = []

    def fake_cell(cell, data_dir, runs_dir):
        calls.append(cell)
        if cell == diverging:
            raise NonFiniteLossError("non-finite loss at step 3")
        workdir = Path(cell.workdir(runs_dir))
        workdir.mkdir(parents=True)
        (workdir / "run_config.json").write_text(json.dumps(cell.config(data_dir).to_dict()))
        (workdir / "eval_test.json").write_text(json.dumps(tiny_run.report))
        return tiny_run.report

    with pytest.raises(sweep.SweepIncompleteError, match=r"1 run\(s\) diverged.*gmp_a0"):
        sweep.run_sweep("unit", str(tiny_run.data_dir), str(runs_dir), run_cell=fake_cell)
    assert calls == [diverging, after]
    assert "| GWRP |" in (runs_dir / "table_iv.md").read_text()


def test_only_selects_part_of_a_grid():
    from twostep_jax import sweep

    e48 = sweep.grid("cpu_table_e48")
    zero = sweep.select(e48, sweep.parse_only(["snr=0"]))
    assert len(zero) == 15 and {c.snr for c in zero} == {0}
    assert zero == [c for c in e48 if c.snr == 0]  # grid order kept
    base = sweep.select(e48, sweep.parse_only(["snr=0", "model=gap, gmp", "seed=1,2"]))
    assert [(c.model, c.seed) for c in base] == [("gap", 1), ("gmp", 1), ("gap", 2), ("gmp", 2)]
    # alpha compares as a number: "0" is every α = 0 row (the baselines and 2APAE without decoder)
    assert {(c.model, c.alpha) for c in sweep.select(e48, sweep.parse_only(["alpha=0"]))} == {
        ("2apae", 0.0), ("gap", 0.0), ("gmp", 0.0), ("atrous_ap", 0.0)}
    assert {c.model for c in sweep.select(e48, sweep.parse_only(["alpha=1e-3"]))} == {"2apae"}
    assert sweep.parse_only(["snr=0,20", "snr=20"]) == {"snr": {20}}  # a repeated key narrows
    assert sweep.select(sweep.grid("quick"), sweep.parse_only(["seed=0"])) == []  # no seed folders
    for bad, message in (("snr", "KEY=VALUE"), ("colour=red", "KEY=VALUE"), ("snr=", "KEY=VALUE"),
                         ("seed=one", "seed takes int")):
        with pytest.raises(ValueError, match=message):
            sweep.parse_only([bad])


def test_sweep_with_only_runs_the_selected_cells(tiny_run, tmp_path, monkeypatch, capsys):
    from twostep_jax import sweep

    gap, gmp = tiny_cell("gap", 0.0), tiny_cell("gmp", 0.0)
    monkeypatch.setitem(sweep.GRIDS, "unit", lambda: [tiny_run.cell, gap, gmp])
    monkeypatch.setattr(sweep, "use_compilation_cache", lambda runs_dir: None)
    runs_dir = tmp_path / "runs"
    shutil.copytree(tiny_run.workdir, Path(tiny_run.cell.workdir(str(runs_dir))))  # a finished cell
    calls = []

    def fake_cell(cell, data_dir, runs_dir):
        calls.append(cell)
        workdir = Path(cell.workdir(runs_dir))
        workdir.mkdir(parents=True)
        (workdir / "run_config.json").write_text(json.dumps(cell.config(data_dir).to_dict()))
        (workdir / "eval_test.json").write_text(json.dumps(tiny_run.report))
        return tiny_run.report

    markdown = sweep.run_sweep("unit", str(tiny_run.data_dir), str(runs_dir), run_cell=fake_cell,
                               only=["model=gmp,2apae"])
    assert calls == [gmp]
    assert "2 of its 3 runs selected by --only model=gmp,2apae" in capsys.readouterr().out
    assert "| GMP |" in markdown and "| GAP |" not in markdown  # the tables: every finished run
    with pytest.raises(ValueError, match="selects none of the 3 runs of sweep unit"):
        sweep.run_sweep("unit", str(tiny_run.data_dir), str(runs_dir), run_cell=fake_cell, only=["snr=5"])
    assert calls == [gmp]


def test_train_cli_only_needs_a_sweep(tmp_path, capsys):
    import train

    with pytest.raises(SystemExit) as e:
        train.main(["--data", str(tmp_path), "--workdir", str(tmp_path / "run"), "--only", "snr=0"])
    assert e.value.code == 2 and "--only selects cells of a --sweep" in capsys.readouterr().err
    assert train.main(["--data", str(tmp_path), "--sweep", "cpu_table_e48", "--runs", str(tmp_path / "r"),
                       "--only", "colour=red"]) == 2
    assert "--only 'colour=red': expected KEY=VALUE" in capsys.readouterr().err
