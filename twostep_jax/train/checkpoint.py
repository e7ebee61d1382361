"""Orbax checkpoints: the one module that talks to orbax (V0 `CheckpointManager` API).

Layout of a run's checkpoints:
    WORKDIR/checkpoints/latest/<step>/{params, batch_stats, opt_state, meta}   (resume)
    WORKDIR/checkpoints/best/<step>/{params, batch_stats, opt_state, meta}     (model selection)

Items are separate so evaluation restores `params`, `batch_stats` and `meta` only: no optimizer
is built. Restores pass an explicit single-device (or replicated) sharding, so a checkpoint
written on 8 devices restores on 1. Orbax commits a step atomically (a step directory without
its commit marker is ignored), so a kill during a save leaves the previous checkpoint usable.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp

from twostep_jax.train.workdir import CHECKPOINTS

LATEST = "latest"
BEST = "best"


def _abstract(tree: Any, sharding: jax.sharding.Sharding | None) -> Any:
    """ShapeDtypeStructs of `tree` placed with `sharding` (default: first local device)."""
    sharding = sharding or jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)


class Checkpoints:
    """`latest` (kept: `keep`) and `best` (kept: 1) checkpoint managers of one run."""

    def __init__(self, workdir: str, keep: int = 2, read_only: bool = False):
        root = os.path.abspath(os.path.join(workdir, CHECKPOINTS))
        self.root = root
        self._managers = {}
        for kind, max_to_keep in ((LATEST, keep), (BEST, 1)):
            path = os.path.join(root, kind)
            if read_only and not os.path.isdir(path):
                continue
            self._managers[kind] = ocp.CheckpointManager(
                path,
                options=ocp.CheckpointManagerOptions(
                    # read-only managers keep nothing and save nothing (orbax warns otherwise)
                    max_to_keep=None if read_only else max_to_keep,
                    save_interval_steps=0 if read_only else 1,
                    create=not read_only, read_only=read_only,
                    cleanup_tmp_directories=not read_only,
                    # Both managers may save the same step at once; in a multi-process run their
                    # cross-process barriers must not share names.
                    multiprocessing_options=ocp.options.MultiprocessingOptions(
                        barrier_sync_key_prefix=kind),
                ),
            )

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        for m in self._managers.values():
            m.wait_until_finished()
            m.close()

    def wait(self) -> None:
        for m in self._managers.values():
            m.wait_until_finished()

    def latest_step(self, kind: str = LATEST) -> int | None:
        m = self._managers.get(kind)
        return None if m is None else m.latest_step()

    def all_steps(self, kind: str = LATEST) -> list[int]:
        m = self._managers.get(kind)
        return [] if m is None else list(m.all_steps())

    def save(self, step: int, state: Any, meta: dict, kinds: tuple[str, ...] = (LATEST,)) -> None:
        """Asynchronously save `state` (a TrainState) and the JSON `meta` under `step`."""
        for kind in kinds:
            self._managers[kind].save(
                step,
                args=ocp.args.Composite(
                    params=ocp.args.StandardSave(state.params),
                    batch_stats=ocp.args.StandardSave(state.batch_stats),
                    opt_state=ocp.args.StandardSave(state.opt_state),
                    meta=ocp.args.JsonSave(meta),
                ),
                force=True,
            )

    def restore_meta(self, step: int | None = None, kind: str = LATEST) -> dict:
        m = self._require(kind)
        step = m.latest_step() if step is None else step
        return m.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

    def restore_train_state(self, state: Any, step: int | None = None, kind: str = LATEST,
                            sharding: jax.sharding.Sharding | None = None) -> tuple[Any, dict]:
        """Restore a full TrainState shaped like `state` (params, batch_stats, opt_state) + meta."""
        m = self._require(kind)
        step = m.latest_step() if step is None else step
        restored = m.restore(step, args=ocp.args.Composite(
            params=ocp.args.StandardRestore(_abstract(state.params, sharding)),
            batch_stats=ocp.args.StandardRestore(_abstract(state.batch_stats, sharding)),
            opt_state=ocp.args.StandardRestore(_abstract(state.opt_state, sharding)),
            meta=ocp.args.JsonRestore(),
        ))
        # The step counter lives in meta (orbax's step is the directory name).
        state = state.replace(step=int(restored["meta"]["step"]), params=restored["params"],
                              batch_stats=restored["batch_stats"], opt_state=restored["opt_state"])
        return state, restored["meta"]

    def restore_variables(self, abstract_variables: Any, step: int | None = None, kind: str = BEST,
                          sharding: jax.sharding.Sharding | None = None) -> tuple[dict, dict, int]:
        """For evaluation: `{"params", "batch_stats"}` + meta + step, no optimizer state read."""
        m = self._require(kind)
        step = m.latest_step() if step is None else step
        if step not in m.all_steps():
            raise FileNotFoundError(f"no {kind} checkpoint at step {step} in {m.directory} "
                                    f"(available: {sorted(m.all_steps())})")
        restored = m.restore(step, args=ocp.args.Composite(
            params=ocp.args.StandardRestore(_abstract(abstract_variables["params"], sharding)),
            batch_stats=ocp.args.StandardRestore(_abstract(abstract_variables["batch_stats"], sharding)),
            meta=ocp.args.JsonRestore(),
        ))
        return {"params": restored["params"], "batch_stats": restored["batch_stats"]}, restored["meta"], step

    def _require(self, kind: str) -> ocp.CheckpointManager:
        m = self._managers.get(kind)
        if m is None or m.latest_step() is None:
            raise FileNotFoundError(f"no {kind} checkpoint under {self.root}: train first (train.py)")
        return m
