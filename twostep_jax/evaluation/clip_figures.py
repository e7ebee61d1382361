"""The paper's Fig. 3 for clips of a dataset split, drawn from a restored run.

    paths = draw_clip_figures(run, clips, select_clips(clips, names=["mix_0003"]), "RUN/figures")

`viz.figures.figure_arrays` maps one clip's model outputs to the figure's panels (shared with
tagging of arbitrary audio). Models without a two-step head have no mel-attention /
time-attention panels (the figure says so) and show their frame-level class activity as the
"first-step output" panel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from twostep_jax.data.dataset import ClipArrays
from twostep_jax.data.features import CLIP_SECONDS, HOP_S
from twostep_jax.data.input_pipeline import normalize
from twostep_jax.evaluation.postprocess import readout
from twostep_jax.evaluation.restore import LoadedRun
from twostep_jax.fileio import safe_filename
from twostep_jax.metrics.sed import frame_probs_to_events, smooth_scores
from twostep_jax.viz.figures import figure_arrays, plot_attention_figure


def select_clips(clips: ClipArrays, names: Sequence[str] = (), random_n: int = 0, seed: int = 0) -> list[int]:
    """Indices of the clips called `names` (mixture names) plus `random_n` random other clips."""
    index = {str(n): i for i, n in enumerate(clips.mixture_name)}
    missing = [n for n in names if n not in index]
    if missing:
        examples = ", ".join(list(index)[:5])
        raise ValueError(f"clip(s) {missing} not in this split ({len(index)} clips, e.g. {examples}); "
                       "choose --split or use --figure-random N")
    chosen = [index[n] for n in names]
    rest = np.setdiff1d(np.arange(len(clips)), chosen)
    if random_n > len(rest):
        raise ValueError(f"--figure-random {random_n}: the split has only {len(rest)} other clips")
    picked = np.random.default_rng(seed).choice(rest, size=random_n, replace=False) if random_n else []
    return chosen + sorted(int(i) for i in picked)


def localisation_panel(outputs: dict, postprocessing: dict, class_names: Sequence[str]) -> dict:
    """Panel 8 of clip 0 of `outputs`: the chosen read-out after its gap filling and median
    filter, [K, T], and the events detected at the chosen threshold."""
    scores = readout(outputs, postprocessing["readout"])[0]
    m, t = postprocessing["median_filter"], postprocessing["threshold"]
    fill = postprocessing.get("fill_gaps", 1)
    return {"scores": smooth_scores(scores, m, fill).T,
            "detections": frame_probs_to_events(scores, HOP_S, t, m, float(CLIP_SECONDS), fill),
            # Short enough for the figure's width: the full choice is in postprocessing.json.
            "title": (f"read-out `{postprocessing['readout']}` (validation's choice: gaps < {fill} "
                      f"filled, median {m}, > {t:g}): white = detected, cyan = ground truth")}


def draw_clip_figures(run: LoadedRun, clips: ClipArrays, indices: Sequence[int], out_dir: str | Path,
                      prefix: str = "", postprocessing: dict | None = None) -> list[Path]:
    """One Fig. 3 PNG per clip, `out_dir/<prefix><mixture_name>.png`, with the clip's ground-truth
    events overlaid (and, given the run's `postprocessing`, panel 8: what it localises); returns
    the paths."""
    names = run.class_names
    paths = []
    for i in indices:
        # One clip at a time: a single compiled batch size, and figures need only a few clips.
        x = normalize(clips.logmel[i:i + 1], run.norm_stats)
        outputs = run.forward(x)
        name = str(clips.mixture_name[i])
        labels = sorted({names[k] for k, _, _ in clips.events[i]})
        title = (f"{name} — {run.config.model} ({run.config.preset}), SNR {run.config.snr} dB; "
                 f"ground truth: {', '.join(labels) or 'none'}")
        paths.append(plot_attention_figure(
            Path(out_dir) / f"{prefix}{safe_filename(name)}.png", x[0], class_names=names,
            ref_events=clips.events[i], hop_s=HOP_S, title=title, **figure_arrays(outputs, 0),
            localisation=None if postprocessing is None else localisation_panel(outputs, postprocessing, names)))
    return paths
