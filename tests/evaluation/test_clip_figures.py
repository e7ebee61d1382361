"""twostep_jax.evaluation.clip_figures: Fig. 3 of named and random clips (through evaluate.py),
seven panels with the ground truth."""

from pathlib import Path

from tests.fixtures import evaluate_cli, normalize


def test_figures_have_seven_panels_and_ground_truth(tiny_run, loaded_run, capsys):
    from twostep_jax.fileio import safe_filename
    from twostep_jax.viz.figures import figure_arrays
    from twostep_jax.viz.figures import N_PANELS, build_attention_figure
    from twostep_jax.data.features import HOP_S
    from twostep_jax.evaluation.score import load_split

    _, clips = load_split(loaded_run, "test")
    name = str(clips.mixture_name[0])
    assert evaluate_cli("--workdir", tiny_run.workdir, "--figure", name, "--figure-random", "1", "--seed", "3") == 0
    written = [Path(p) for p in capsys.readouterr().out.split()]
    assert len(written) == 2 and written[0].name == f"test_{safe_filename(name)}.png"
    for p in written:
        assert p.parent == tiny_run.workdir / "figures" and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    x = normalize(loaded_run, clips.logmel[:1])
    fig = build_attention_figure(x[0], class_names=loaded_run.class_names, ref_events=clips.events[0],
                                 hop_s=HOP_S, **figure_arrays(loaded_run.forward(x), 0))
    assert len(fig.axes) == N_PANELS == 7

    assert evaluate_cli("--workdir", tiny_run.workdir, "--figure", "no_such_clip") == 2
    assert "not in this split" in capsys.readouterr().err
