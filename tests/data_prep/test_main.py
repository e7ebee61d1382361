"""data_prep.__main__: the command line's flags and its errors (no traceback)."""

import pytest

from data_prep import __main__ as cli


def test_cli_reports_bad_input_without_a_traceback(tmp_path, capsys):
    code = cli.main(["--source", "dcase", "--events-dir", str(tmp_path / "missing"),
                     "--scenes-dir", str(tmp_path), "--out", str(tmp_path / "out"), "--snr", "0"])
    assert code == 2
    assert f"error: events folder {tmp_path / 'missing'} does not exist" in capsys.readouterr().err


def test_cli_flag_validation():
    with pytest.raises(SystemExit):
        cli.parse_args(["--source", "dcase", "--out", "x"])
    with pytest.raises(SystemExit):
        cli.parse_args(["--source", "builtin", "--out", "x", "--events-dir", "y"])
    args = cli.parse_args(["--out", "x"])
    assert (args.source, args.snr, args.mixtures_per_fold, args.event_order) == (
        "builtin", [0, 10, 20], 2000, "faithful")


def test_bad_arguments_generate_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        cli.main(["--source", "builtin", "--mixtures-per-fold", "0", "--out", str(out)])
    assert e.value.code == 2 and "--mixtures-per-fold must be >= 1" in capsys.readouterr().err
    # The library entry point checks before generating the corpus, too.
    from data_prep import prepare
    from data_prep.errors import DataPrepError

    with pytest.raises(DataPrepError, match="mixtures_per_fold must be >= 1"):
        prepare.prepare_builtin(out, [20], mixtures_per_fold=0, log=lambda m: None)
    assert not out.exists()


def test_a_failed_run_leaves_no_folder_behind_and_os_errors_are_one_line(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["--source", "dcase", "--events-dir", str(tmp_path / "missing"),
                     "--scenes-dir", str(tmp_path), "--out", str(out), "--snr", "0"]) == 2
    assert not out.exists()  # it held only the lock file this run made
    kept = tmp_path / "kept"
    (kept / "notes").mkdir(parents=True)
    assert cli.main(["--source", "dcase", "--events-dir", str(tmp_path / "missing"),
                     "--scenes-dir", str(tmp_path), "--out", str(kept), "--snr", "0"]) == 2
    assert (kept / "notes").is_dir()  # someone else's folder: left alone
    capsys.readouterr()
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert cli.main(["--out", str(blocker / "out"), "--snr", "20", "--mixtures-per-fold", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("data_prep: error: ") and "Not a directory" in err[0]


def test_missing_prep_extra_is_one_line_before_any_work(tmp_path, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tensorflow_datasets" else real(name, *a))
    out = tmp_path / "data"
    assert cli.main(["--source", "builtin", "--out", str(out), "--mixtures-per-fold", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("data_prep: error: tensorflow_datasets not installed") and '.[prep]' in err
    assert not out.exists()  # nothing generated
