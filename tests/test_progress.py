"""twostep_jax.progress: the progress line."""


def test_progress_line_reports_rate_and_eta():
    import io

    from twostep_jax.progress import progress_bar

    stream = io.StringIO()
    with progress_bar("features", 4, unit="mixtures", stream=stream) as progress:
        progress.update(1)
        progress.refresh()
        assert stream.getvalue().splitlines()[-1].startswith("features: 1/4 mixtures (25%) | ")
        assert "mixtures/s | ETA " in stream.getvalue()
        progress.update(3)
    lines = stream.getvalue().splitlines()
    assert lines[-1].startswith("features: 4/4 mixtures (100%)") and "\r" not in stream.getvalue()
    quiet = io.StringIO()
    with progress_bar("features", 4, stream=quiet, quiet=True) as progress:
        progress.update(4)
    assert quiet.getvalue() == ""
