"""The paper's Fig. 3 for clips of a dataset split, drawn from a restored run.

    paths = draw_clip_figures(run, clips, select_clips(clips, names=["mix_0003"]), "RUN/figures")

`figure_arrays` maps one clip's model outputs to `figures.plot_attention_figure`'s panels; it is
shared with tagging of arbitrary audio (`tagging.py`). Models without a two-step head have no
mel-attention / time-attention panels (the figure says so) and show their frame-level class
activity as the "first-step output" panel.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np

from twostep_jax.figures import plot_attention_figure
from twostep_jax.input_pipeline import ClipArrays, normalize
from twostep_jax.restore import LoadedRun
from twostep_jax.run_eval import HOP_S


def figure_arrays(outputs: dict[str, np.ndarray], i: int) -> dict[str, np.ndarray | None]:
    """Panels of clip `i` of batched model outputs (`[B, ...]` numpy, see models.SEDModel).

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


def safe_filename(name: str) -> str:
    """A file-name-safe version of a clip/file name, without an audio extension."""
    name = re.sub(r"\.(wav|flac|ogg|mp3)$", "", name, flags=re.IGNORECASE)
    return re.sub(r"[^\w.-]+", "_", name).strip("._") or "clip"


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


def draw_clip_figures(run: LoadedRun, clips: ClipArrays, indices: Sequence[int], out_dir: str | Path,
                      prefix: str = "") -> list[Path]:
    """One 7-panel PNG per clip, `out_dir/<prefix><mixture_name>.png`, with the clip's ground-truth
    events overlaid; returns the paths."""
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
            ref_events=clips.events[i], hop_s=HOP_S, title=title, **figure_arrays(outputs, 0)))
    return paths
