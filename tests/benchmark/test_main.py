"""twostep_jax.benchmark.__main__: user errors are one `<prog>: error:` line, exit code 2."""

import pytest

from twostep_jax.benchmark.__main__ import main


@pytest.mark.parametrize("argv", [["--steps", "0"], ["--global-batch", "0"], ["--pipeline"]])
def test_bad_flags_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert "python -m twostep_jax.benchmark: error: " in capsys.readouterr().err


def test_missing_data_is_one_line(tmp_path, capsys):
    assert main(["--pipeline", "--data", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("python -m twostep_jax.benchmark: error: data folder")
