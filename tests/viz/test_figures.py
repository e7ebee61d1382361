"""twostep_jax.viz.figures: the Fig. 3 figure: 7 panels, written atomically, robust to models
without a decoder."""

import numpy as np
import pytest
from matplotlib.patches import Rectangle

from twostep_jax.viz import figures

T, F, K = 40, 8, 4
NAMES = ["Bark", "Cello", "Gong", "Violin_or_fiddle"]
EVENTS = [(1, 0.2, 0.6), (3, 0.8, 1.1)]


def inputs(seed=0):
    rng = np.random.default_rng(seed)
    att = rng.random((K, T, F))
    time_att = rng.random((K, T))
    return dict(
        logmel=rng.normal(size=(T, F)),
        reconstruction=rng.random((T, F)),
        freq_attention=att / att.sum(-1, keepdims=True),
        freq_pooled=rng.random((K, T)),
        time_attention=time_att / time_att.sum(-1, keepdims=True),
        clip_probs=np.array([0.1, 0.9, 0.3, 0.7]),  # ranking: Cello, Violin, Gong, Bark
        class_names=NAMES,
        ref_events=EVENTS,
    )


def test_build_has_seven_panels_with_data():
    fig = figures.build_attention_figure(**inputs())
    assert figures.N_PANELS == 7
    assert len(fig.axes) == 7
    mel, rec, att_a, att_b, step1, step2, bars = fig.axes
    for ax in (mel, rec, att_a, att_b, step1, step2):
        assert len(ax.images) == 1
    assert len(bars.patches) == K  # one bar per class
    # Panels 3 and 4 show the two most probable classes, in order.
    assert "Cello" in att_a.get_title(loc="left") and "Violin_or_fiddle" in att_b.get_title(loc="left")
    # Ground truth: one box per event on the class x time panels, labels on panel 1.
    for ax in (step1, step2):
        assert sum(isinstance(p, Rectangle) for p in ax.patches) == len(EVENTS)
    assert {t.get_text() for t in mel.texts} == {"Cello", "Violin_or_fiddle"}


def test_plot_writes_png_atomically(tmp_path):
    out = tmp_path / "figs" / "clip_00001.png"
    path = figures.plot_attention_figure(out, **inputs(), title="clip 00001")
    assert path == out
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temporary file left


def test_without_decoder_or_attention(tmp_path):
    kw = inputs()
    kw.update(reconstruction=None, freq_attention=None, time_attention=None)
    fig = figures.build_attention_figure(**kw)
    assert len(fig.axes) == 7
    rec, att_a, _, _, step2 = fig.axes[1], fig.axes[2], fig.axes[3], fig.axes[4], fig.axes[5]
    assert not rec.images and any("no decoder" in t.get_text() for t in rec.texts)
    assert not att_a.images and not step2.images
    assert figures.plot_attention_figure(tmp_path / "base.png", **kw).is_file()


@pytest.mark.parametrize(
    "change, match",
    [
        ({"freq_attention": np.zeros((K, T, F + 1))}, r"freq_attention must have shape \[K, T, F\]"),
        ({"reconstruction": np.zeros((T + 1, F))}, "reconstruction must have shape"),
        ({"time_attention": np.zeros((K, T - 1))}, "time_attention must have shape"),
        ({"class_names": NAMES[:3]}, "class_names has 3 entries"),
        ({"clip_probs": np.array([0.1, 1.5, 0.3, 0.7])}, r"clip_probs must be probabilities in \[0, 1\]"),
        ({"ref_events": [(4, 0.1, 0.2)]}, r"class index 4 out of range \[0, 4\)"),
        ({"ref_events": [(1, 0.5, 0.2)]}, "onset 0.5 must be before offset"),
        ({"logmel": np.zeros(T)}, "logmel must be 2-D"),
        ({"logmel": np.full((T, F), np.nan)}, "logmel contains NaN"),
    ],
)
def test_rejects_malformed_inputs(change, match):
    kw = inputs()
    kw.update(change)
    with pytest.raises(ValueError, match=match):
        figures.build_attention_figure(**kw)
