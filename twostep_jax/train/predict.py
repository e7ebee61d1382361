"""Running a model over a set of clips: batched, padded, on all local devices.

Shared by training (validation every epoch) and evaluation (`evaluation.report`), which is why
it lives here, below both: the caller passes the compiled eval step (`train.step.make_eval_step`).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import numpy as np

from twostep_jax.data import input_pipeline
from twostep_jax.metrics.clip import clip_metrics


def predict(eval_step: Callable, variables: Any, clips: Any, stats: Any, global_batch: int,
            keep_frames: bool = False) -> dict[str, np.ndarray]:
    """Clip probabilities [N, K] for every clip, in order; with `keep_frames` also the frame
    probabilities [N, T, K] and every frame-level read-out of the head, `frame_outputs`
    {name: [N, T, K]}.

    `eval_step` is `train.step.make_eval_step(model)` (pmapped over local devices); the last batch
    is padded and masked so that every clip counts exactly once.
    """
    n = len(clips.target)
    num_devices = jax.local_device_count()
    # Round the batch to the device count: evaluation has no batch-size semantics.
    global_batch = max(num_devices, (global_batch // num_devices) * num_devices)
    clip_probs = np.zeros(clips.target.shape, np.float32)
    frame_shape = (n,) + clips.logmel.shape[1:2] + clips.target.shape[1:]
    frame_probs = np.zeros(frame_shape, np.float32) if keep_frames else None
    frame_outputs: dict[str, np.ndarray] = {}
    seen = np.zeros(n, bool)
    for batch in input_pipeline.eval_batches(clips, stats, global_batch, num_devices):
        out = eval_step(variables, {"logmel": batch["logmel"]})
        mask = np.asarray(batch["mask"]).reshape(-1) > 0
        index = np.asarray(batch["index"]).reshape(-1)[mask]
        clip_probs[index] = np.asarray(out["clip_probs"]).reshape((-1,) + clip_probs.shape[1:])[mask]
        if keep_frames:
            frame_probs[index] = np.asarray(out["frame_probs"]).reshape((-1,) + frame_shape[1:])[mask]
            for name, value in out["frame_outputs"].items():
                dest = frame_outputs.setdefault(name, np.zeros(frame_shape, np.float32))
                dest[index] = np.asarray(value).reshape((-1,) + frame_shape[1:])[mask]
        seen[index] = True
    if not seen.all():
        raise RuntimeError(f"evaluation covered {seen.sum()} of {n} clips")
    result = {"clip_probs": clip_probs}
    if keep_frames:
        result["frame_probs"] = frame_probs
        result["frame_outputs"] = frame_outputs
    return result


def evaluate_clips(eval_step: Callable, variables: Any, clips: Any, stats: Any, global_batch: int,
                   class_names: list[str]) -> dict:
    """The paper's clip-level metrics (micro-AP, macro-AP, macro AUC) on `clips`."""
    probs = predict(eval_step, variables, clips, stats, global_batch)["clip_probs"]
    return clip_metrics(clips.target, probs, class_names)
