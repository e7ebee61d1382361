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
