"""The paper's Fig. 3: what each stage of 2APAE does to one clip.

Seven stacked panels, as in the paper (time on the x axis of panels 1-6):

1. input (z-scored) log-mel, mel x time;
2. decoder reconstruction (a "no decoder" note for models without one);
3. 4. first-step (mel) attention weights of the two most probable classes;
5. first-step output: class x time activity;
6. second-step (time) attention weights: class x time;
7. final clip probabilities, one bar per class, top classes named;
8. (optional, `localisation=`) what the model localises: the frame-level read-out chosen on
   validation (after its median filter), with the detected events outlined in white.

Ground-truth events are overlaid on the time panels (dashed onset/offset lines,
class names in panel 1, a box on the event's class row in panels 5-6) and marked
above their bars in panel 7.

Figures are built on a bare :class:`matplotlib.figure.Figure` with the Agg
canvas -- no ``pyplot`` -- so nothing touches global matplotlib state or the
user's backend, and no figure needs closing (it is freed with the object).
PNG files are written atomically (``fileio.save_figure``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from twostep_jax.fileio import save_figure

N_PANELS = 7
_GT_COLOR = "tab:red"
_GT_BOX_COLOR = "cyan"  # visible on the magma class x time maps
_CMAP = "magma"
_MAX_CLASS_TICKS = 20  # label every class row/bar only up to this many classes
_PROB_TOLERANCE = 1e-5  # float32 rounding of model probabilities; clipped, not rejected

__all__ = ["N_PANELS", "build_attention_figure", "figure_arrays", "plot_attention_figure"]


def figure_arrays(outputs: dict[str, np.ndarray], i: int) -> dict[str, np.ndarray | None]:
    """Panels of clip `i` of batched model outputs (`[B, ...]` numpy, see model.models.SEDModel).

    Returns {"reconstruction": [T, F] | None, "freq_attention": [K, T, F] | None,
    "freq_pooled": [K, T], "time_attention": [K, T] | None, "clip_probs": [K]}.
    """
    def get(key):
        return None if key not in outputs else outputs[key][i]

    freq_pooled = get("freq_pooled")
    if freq_pooled is None:  # single-step heads: their frame-level activity [T, K] -> [K, T]
        freq_pooled = outputs["frame_probs"][i].T
    return {"reconstruction": get("reconstruction"), "freq_attention": get("freq_attention"),
            "freq_pooled": freq_pooled, "time_attention": get("time_attention"),
            "clip_probs": outputs["clip_probs"][i]}



def _as_array(x, name: str, ndim: int) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D; got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name} is empty (shape {a.shape})")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def _expect_shape(a: np.ndarray | None, name: str, shape: tuple, meaning: str) -> None:
    if a is not None and a.shape != shape:
        raise ValueError(f"{name} must have shape {meaning} = {shape}; got {a.shape}")


def _validate(logmel, reconstruction, freq_attention, freq_pooled, time_attention,
              clip_probs, class_names, ref_events, hop_s, top_k):
    logmel = _as_array(logmel, "logmel", 2)
    T, F = logmel.shape
    clip_probs = _as_array(clip_probs, "clip_probs", 1)
    K = clip_probs.shape[0]
    if clip_probs.min() < -_PROB_TOLERANCE or clip_probs.max() > 1 + _PROB_TOLERANCE:
        raise ValueError(f"clip_probs must be probabilities in [0, 1]; got [{clip_probs.min():.4g}, {clip_probs.max():.4g}]")
    clip_probs = np.clip(clip_probs, 0.0, 1.0)
    opt = lambda x, name, nd: None if x is None else _as_array(x, name, nd)  # noqa: E731
    reconstruction = opt(reconstruction, "reconstruction", 2)
    freq_attention = opt(freq_attention, "freq_attention", 3)
    freq_pooled = _as_array(freq_pooled, "freq_pooled", 2)
    time_attention = opt(time_attention, "time_attention", 2)
    _expect_shape(reconstruction, "reconstruction", (T, F), "[T, F] like logmel")
    _expect_shape(freq_attention, "freq_attention", (K, T, F), "[K, T, F]")
    _expect_shape(freq_pooled, "freq_pooled", (K, T), "[K, T]")
    _expect_shape(time_attention, "time_attention", (K, T), "[K, T]")
    class_names = [str(c) for c in class_names]
    if len(class_names) != K:
        raise ValueError(f"class_names has {len(class_names)} entries but clip_probs has {K} classes")
    if not (float(hop_s) > 0):
        raise ValueError(f"hop_s must be positive; got {hop_s!r}")
    if int(top_k) != top_k or not 1 <= top_k <= K:
        raise ValueError(f"top_k must be an integer in [1, {K}]; got {top_k!r}")
    events = []
    for i, ev in enumerate(ref_events or []):
        try:
            c, on, off = ev
        except (TypeError, ValueError):
            raise ValueError(f"ref_events[{i}] must be (class_index, onset_s, offset_s); got {ev!r}") from None
        if int(c) != c or not 0 <= int(c) < K:
            raise ValueError(f"ref_events[{i}]: class index {c!r} out of range [0, {K})")
        if not float(on) < float(off):
            raise ValueError(f"ref_events[{i}]: onset {on} must be before offset {off}")
        events.append((int(c), float(on), float(off)))
    return logmel, reconstruction, freq_attention, freq_pooled, time_attention, clip_probs, class_names, events


def _image(ax, data_ft: np.ndarray, duration: float, ylabel: str, title: str, cmap=_CMAP):
    """Shows a [T, F] array as F (bottom to top) x time, with an inset colour bar."""
    im = ax.imshow(data_ft.T, origin="lower", aspect="auto", interpolation="nearest",
                   extent=(0.0, duration, 0, data_ft.shape[1]), cmap=cmap)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9, loc="left")
    # Inset axes stay out of fig.axes, so the figure keeps exactly 7 panels.
    ax.figure.colorbar(im, cax=ax.inset_axes([1.005, 0.0, 0.012, 1.0]))
    return im


def _class_image(ax, data_kt: np.ndarray, duration: float, title: str, tick_classes, class_names):
    """Shows a [K, T] array with class 0 on top and named ticks for ``tick_classes``."""
    K = data_kt.shape[0]
    im = ax.imshow(data_kt, origin="upper", aspect="auto", interpolation="nearest",
                   extent=(0.0, duration, K - 0.5, -0.5), cmap=_CMAP)
    ax.set_yticks(list(tick_classes))
    ax.set_yticklabels([class_names[k] for k in tick_classes], fontsize=7)
    ax.set_ylabel("class")
    ax.set_title(title, fontsize=9, loc="left")
    ax.figure.colorbar(im, cax=ax.inset_axes([1.005, 0.0, 0.012, 1.0]))


def _note(ax, text: str):
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=10, color="0.3")
    ax.set_yticks([])
    ax.set_facecolor("0.95")


def _overlay_events(ax, events, class_names, *, class_rows: bool, label: bool):
    for k, on, off in events:
        for t in (on, off):
            ax.axvline(t, color=_GT_COLOR, lw=0.9, ls="--", alpha=0.8)
        if class_rows:
            ax.add_patch(Rectangle((on, k - 0.5), off - on, 1.0, fill=False, ec=_GT_BOX_COLOR, lw=1.2))
        if label:
            ax.text((on + off) / 2, 0.97, class_names[k], transform=ax.get_xaxis_transform(),
                    ha="center", va="top", fontsize=7, color=_GT_COLOR,
                    bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.8))


def build_attention_figure(
    logmel,
    reconstruction,
    freq_attention,
    freq_pooled,
    time_attention,
    clip_probs,
    class_names: Sequence[str],
    ref_events=None,
    hop_s: float = 0.032,
    title: str | None = None,
    top_k: int = 2,
    localisation: dict | None = None,
) -> Figure:
    """Builds Fig. 3 for one clip (shapes as in :func:`plot_attention_figure`).

    Returns:
      a :class:`~matplotlib.figure.Figure` whose ``axes`` are exactly the 7 panels (8 with
      ``localisation``).
    """
    (logmel, reconstruction, freq_attention, freq_pooled, time_attention,
     clip_probs, class_names, events) = _validate(
        logmel, reconstruction, freq_attention, freq_pooled, time_attention,
        clip_probs, class_names, ref_events, hop_s, top_k)
    T, _ = logmel.shape
    K = clip_probs.shape[0]
    duration = T * float(hop_s)
    ranked = [int(k) for k in np.argsort(-clip_probs, kind="stable")]
    top = ranked[:top_k]
    attended = ranked[:2]  # the paper shows mel attention of the two most probable classes
    gt_classes = sorted({k for k, _, _ in events})
    tick_classes = range(K) if K <= _MAX_CLASS_TICKS else sorted(set(top) | set(attended) | set(gt_classes))

    n_panels = N_PANELS + (localisation is not None)
    fig = Figure(figsize=(10, 17 + 2.3 * (n_panels - N_PANELS)), layout="constrained")
    FigureCanvasAgg(fig)
    gs = fig.add_gridspec(n_panels, 1, height_ratios=[1, 1, 1, 1, 1.2, 1.2, 1.3][:n_panels] + [1.2] * (n_panels - N_PANELS))
    ax_mel = fig.add_subplot(gs[0])
    time_axes = [ax_mel] + [fig.add_subplot(gs[i], sharex=ax_mel) for i in range(1, 6)]
    ax_rec, ax_att_a, ax_att_b, ax_step1, ax_step2 = time_axes[1:]
    ax_bar = fig.add_subplot(gs[6])

    _image(ax_mel, logmel, duration, "mel bin", "(1) input log-mel", cmap="viridis")
    if reconstruction is None:
        _note(ax_rec, "no decoder (model has no reconstruction branch)")
        ax_rec.set_title("(2) decoder reconstruction", fontsize=9, loc="left")
    else:
        _image(ax_rec, reconstruction, duration, "mel bin", "(2) decoder reconstruction", cmap="viridis")
    for i, ax in enumerate((ax_att_a, ax_att_b)):
        panel = f"({3 + i}) first-step (mel) attention"
        if i >= len(attended):
            _note(ax, "model has a single class")
            ax.set_title(panel, fontsize=9, loc="left")
        elif freq_attention is None:
            _note(ax, "no first-step attention in this model")
            ax.set_title(panel, fontsize=9, loc="left")
        else:
            k = attended[i]
            _image(ax, freq_attention[k], duration, "mel bin",
                   f"{panel}: {class_names[k]} (p = {clip_probs[k]:.3f})")
    _class_image(ax_step1, freq_pooled, duration, "(5) first-step output (frame-level class activity)",
                 tick_classes, class_names)
    if time_attention is None:
        _note(ax_step2, "no second-step attention in this model")
        ax_step2.set_title("(6) second-step (time) attention", fontsize=9, loc="left")
    else:
        _class_image(ax_step2, time_attention, duration, "(6) second-step (time) attention weights",
                     tick_classes, class_names)

    for ax in time_axes:
        _overlay_events(ax, events, class_names, class_rows=ax in (ax_step1, ax_step2) and bool(ax.images),
                        label=ax is ax_mel)
        ax.set_xlim(0.0, duration)
    for ax in time_axes[:-1]:
        ax.tick_params(labelbottom=False)
    ax_step2.set_xlabel("time (s)")

    colors = ["tab:orange" if k in top else "tab:blue" for k in range(K)]
    ax_bar.bar(np.arange(K), clip_probs, color=colors, width=0.8)
    for k in gt_classes:  # mark the clip's true classes above their bars
        ax_bar.plot(k, 1.1, marker="v", color=_GT_COLOR, ms=6)
    for k in top:
        ax_bar.annotate(f"{class_names[k]}\n{clip_probs[k]:.2f}", (k, clip_probs[k]), xytext=(0, 2),
                        textcoords="offset points", ha="center", va="bottom", fontsize=7)
    ax_bar.set_ylim(0.0, 1.18)
    ax_bar.set_xlim(-0.6, K - 0.4)
    ax_bar.set_xticks(list(tick_classes))
    ax_bar.set_xticklabels([class_names[k] for k in tick_classes], rotation=60, ha="right", fontsize=7)
    ax_bar.set_ylabel("probability")
    ax_bar.set_title("(7) clip probabilities (orange: top classes, red ▼: ground truth)", fontsize=9, loc="left")
    if localisation is not None:
        _localisation_panel(fig.add_subplot(gs[7], sharex=ax_mel), localisation, events, duration,
                            tick_classes, class_names)
    if title:
        fig.suptitle(title)
    return fig


def _localisation_panel(ax, localisation: dict, events, duration: float, tick_classes, class_names):
    """Panel 8: `localisation` = {"scores": [K, T] in [0, 1], "title": str, "detections":
    [(class, onset_s, offset_s), ...]}; ground truth in cyan, detections in white."""
    scores = _as_array(localisation["scores"], "localisation scores", 2)
    _class_image(ax, scores, duration, "(8) " + localisation["title"], tick_classes, class_names)
    _overlay_events(ax, events, class_names, class_rows=True, label=False)
    for k, on, off in localisation.get("detections", ()):
        ax.add_patch(Rectangle((on, k - 0.5), off - on, 1.0, fill=False, ec="white", lw=1.0, ls="-"))
    ax.set_xlim(0.0, duration)
    ax.set_xlabel("time (s)")


def plot_attention_figure(
    path,
    logmel,
    reconstruction,
    freq_attention,
    freq_pooled,
    time_attention,
    clip_probs,
    class_names: Sequence[str],
    ref_events=None,
    hop_s: float = 0.032,
    title: str | None = None,
    top_k: int = 2,
    localisation: dict | None = None,
) -> Path:
    """Draws the paper's Fig. 3 for one clip and writes it as PNG.

    Args:
      path: output PNG path (parent directories are created).
      logmel: ``[T, F]`` network input (time x mel).
      reconstruction: ``[T, F]`` decoder output, or None for models without a decoder.
      freq_attention: ``[K, T, F]`` first-step softmax weights over mel bins
        (None for models without one).
      freq_pooled: ``[K, T]`` first-step output / frame-level class activity.
      time_attention: ``[K, T]`` second-step softmax weights over time (or None).
      clip_probs: ``[K]`` final clip probabilities in [0, 1].
      class_names: K names.
      ref_events: ground truth ``[(class_index, onset_s, offset_s), ...]``.
      hop_s: seconds per frame.
      title: optional figure title.
      top_k: number of most probable classes highlighted and named in panel 7
        (panels 3 and 4 always show the two most probable classes, as the paper).
      localisation: optional panel 8, {"scores": [K, T], "title": str, "detections": events}.

    Returns:
      ``path`` as a :class:`pathlib.Path`.
    """
    fig = build_attention_figure(logmel, reconstruction, freq_attention, freq_pooled, time_attention,
                                 clip_probs, class_names, ref_events=ref_events, hop_s=hop_s,
                                 title=title, top_k=top_k, localisation=localisation)
    return save_figure(fig, path)
