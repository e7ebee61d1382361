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


def test_eta_starts_after_the_first_compiled_step():
    import io

    from twostep_jax.progress import progress_bar

    clock = {"t": 0.0}
    bar = progress_bar("train", 100, unit="clips", stream=io.StringIO())
    bar._time = lambda: clock["t"]
    bar.start_t = bar.last_print_t = 0.0
    clock["t"] = 60.0  # the first step: a minute of compilation
    bar.update(10)
    bar.restart_clock()
    clock["t"] = 62.0  # the next steps: 10 clips/s
    bar.update(20)
    d = bar.format_dict
    remaining = (d["total"] - d["n"]) / ((d["n"] - d["initial"]) / d["elapsed"])
    assert d["initial"] == 10 and d["elapsed"] == 2.0
    assert remaining == 7.0  # 70 clips at 10 clips/s, not ~210 s inflated by compilation
    line = bar.format_meter(**{**d, "rate": None})
    assert "ETA 00:07" in line
    bar.close()


def test_the_silent_bar_offers_what_callers_use(monkeypatch):
    """Without tqdm (a bare accelerator host) the bar is silent but has every method the
    training loop and data_prep call on a bar."""
    from twostep_jax import progress

    monkeypatch.setattr(progress, "tqdm", None)
    with progress.progress_bar("train", 10, unit="clips") as bar:
        bar.update(2)
        bar.restart_clock()
        bar.set_postfix_str("loss 0.1", refresh=False)
    bar.close()
    real = [m for m in ("update", "restart_clock", "set_postfix_str", "close", "__enter__", "__exit__")
            if not hasattr(progress._SilentBar, m)]
    assert real == []
