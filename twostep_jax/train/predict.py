"""Running a model over a set of clips: batched, padded, on all devices of all processes.

Shared by training (validation every epoch) and evaluation (`evaluation.report`), which is why
it lives here, below both: the caller passes the compiled eval step of its parallel form
(`train.parallel.ParallelForm.make_eval_step`).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import numpy as np

from twostep_jax.data import input_pipeline
from twostep_jax.metrics.clip import clip_metrics
from twostep_jax.train.parallel import ParallelForm, gather_processes, parallel_form


FRAME_OUTPUT = "frame_outputs/"  # key prefix of the head's read-outs while gathering


def predict(eval_step: Callable, variables: Any, clips: Any, stats: Any, global_batch: int,
            keep_frames: bool = False, form: ParallelForm | None = None) -> dict[str, np.ndarray]:
    """Clip probabilities [N, K] for every clip, in order; with `keep_frames` also the frame
    probabilities [N, T, K] and every frame-level read-out of the head, `frame_outputs`
    {name: [N, T, K]}.

    `eval_step` is `form.make_eval_step(model)` (default form: pmap). Each process runs its slice
    of every global batch; the outputs of all processes are gathered at the end, so every process
    returns all N clips. The last batch is padded and masked so that every clip counts once.
    """
    form = form or parallel_form("pmap")
    n = len(clips.target)
    num_devices, processes = jax.local_device_count(), jax.process_count()
    # Round the batch to the device count: evaluation has no batch-size semantics.
    shards = num_devices * processes
    global_batch = max(shards, (global_batch // shards) * shards)
    variables = form.put_state(variables)
    rows: dict[str, list[np.ndarray]] = {"index": [], "clip_probs": []}
    for batch in input_pipeline.eval_batches(clips, stats, global_batch, num_devices,
                                             jax.process_index(), processes):
        out = eval_step(variables, form.put_batch({"logmel": batch["logmel"]}))
        rows["index"].append(np.asarray(batch["index"]).reshape(-1))
        rows["clip_probs"].append(form.local_rows(out["clip_probs"]))
        if keep_frames:
            rows.setdefault("frame_probs", []).append(form.local_rows(out["frame_probs"]))
            for name, value in out["frame_outputs"].items():
                rows.setdefault(FRAME_OUTPUT + name, []).append(form.local_rows(value))
    gathered = gather_processes({key: np.concatenate(parts) for key, parts in rows.items()})
    index = gathered.pop("index")
    real = index >= 0
    seen = np.zeros(n, bool)
    seen[index[real]] = True
    if not seen.all() or real.sum() != n:
        raise RuntimeError(f"evaluation covered {seen.sum()} of {n} clips ({real.sum()} outputs)")
    result: dict = {"frame_outputs": {}} if keep_frames else {}
    for key, values in gathered.items():
        placed = np.zeros((n,) + values.shape[1:], np.float32)
        placed[index[real]] = values[real]
        if key.startswith(FRAME_OUTPUT):
            result["frame_outputs"][key[len(FRAME_OUTPUT):]] = placed
        else:
            result[key] = placed
    return result


def evaluate_clips(eval_step: Callable, variables: Any, clips: Any, stats: Any, global_batch: int,
                   class_names: list[str], form: ParallelForm | None = None) -> dict:
    """The paper's clip-level metrics (micro-AP, macro-AP, macro AUC) on `clips`."""
    probs = predict(eval_step, variables, clips, stats, global_batch, form=form)["clip_probs"]
    return clip_metrics(clips.target, probs, class_names)
