"""Orbax checkpoints: the one module that talks to orbax (V0 `CheckpointManager` API).

Layout of a run's checkpoints:
    WORKDIR/checkpoints/latest/<step>/{params, batch_stats, opt_state, [ema,] meta}   (resume)
    WORKDIR/checkpoints/best/<step>/{params, batch_stats, opt_state, [ema,] meta}     (model selection)

`ema` (the moving average of {"params", "batch_stats"}) exists only for runs trained with
`--ema-decay`. Items are separate so evaluation restores the weights it runs (`params` and
`batch_stats`, or `ema`) and `meta` only: no optimizer is built. Restores pass an explicit single-device (or replicated) sharding, so a checkpoint
written on 8 devices restores on 1. Orbax commits a step atomically (a step directory without
its commit marker is ignored), so a kill during a save leaves the previous checkpoint usable.

Failures get one line each: a step that cannot be read raises `CorruptCheckpointError` naming the
step folder and the broken item (resume falls back to the newest readable step instead), and a
save that runs out of disk raises `DiskFullError` naming the last good step.
"""

from __future__ import annotations

import contextlib
import errno
import os
from typing import Any, Callable, Iterator

import jax
import orbax.checkpoint as ocp

from twostep_jax.train.workdir import CHECKPOINTS

LATEST = "latest"
BEST = "best"


class CorruptCheckpointError(ValueError):
    """A kept checkpoint step that cannot be read (damaged or partly deleted files)."""


class DiskFullError(RuntimeError):
    """A checkpoint could not be written for lack of space; the earlier ones are intact."""


def _is_disk_full(e: BaseException | None) -> bool:
    """Whether ENOSPC is anywhere in an exception's chain (orbax re-raises from its threads and
    tensorstore reports it as a ValueError carrying the OS message)."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            return True
        if "No space left on device" in str(e):
            return True
        if any(_is_disk_full(x) for x in getattr(e, "exceptions", ())):  # ExceptionGroup
            return True
        e = e.__cause__ or e.__context__
    return False


def _reason(e: BaseException) -> str:
    """The first line of an exception, short enough for a one-line message."""
    first = (str(e).strip().splitlines() or [""])[0]
    return f"{type(e).__name__}: {first[:200]}"


def _abstract(tree: Any, sharding: jax.sharding.Sharding | None) -> Any:
    """ShapeDtypeStructs of `tree` placed with `sharding` (default: first local device)."""
    sharding = sharding or jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)


class Checkpoints:
    """`latest` (kept: `keep`) and `best` (kept: 1) checkpoint managers of one run."""

    def __init__(self, workdir: str, keep: int = 2, read_only: bool = False):
        root = os.path.abspath(os.path.join(workdir, CHECKPOINTS))
        self.root = root
        self._saving_step: int | None = None  # the step of the save that may still be running
        self._failed = False
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
        already_failed = self._failed  # a DiskFullError is on its way up: do not raise it twice
        try:
            self.wait()
        except DiskFullError:
            if not already_failed:
                raise
        finally:
            for m in self._managers.values():
                try:
                    m.close()
                except Exception:
                    if not self._failed:  # after a reported failure, its echoes add nothing
                        raise

    def wait(self) -> None:
        """Waits for the running save; raises DiskFullError if it ran out of space."""
        for m in self._managers.values():
            with self._disk_full_as_one_line():
                m.wait_until_finished()
        self._saving_step = None

    def latest_step(self, kind: str = LATEST) -> int | None:
        m = self._managers.get(kind)
        return None if m is None else m.latest_step()

    def all_steps(self, kind: str = LATEST) -> list[int]:
        m = self._managers.get(kind)
        return [] if m is None else list(m.all_steps())

    def save(self, step: int, state: Any, meta: dict, kinds: tuple[str, ...] = (LATEST,)) -> None:
        """Asynchronously save `state` (a TrainState) and the JSON `meta` under `step`.

        Raises DiskFullError (here or from the next save/wait/close) when the disk is full.
        """
        for kind in kinds:
            m = self._managers[kind]
            if step in m.all_steps():
                # The epoch-end save of a step that `checkpoint_every_steps` saved already
                # carries the newer meta (next epoch, plateau, best): it replaces the earlier one.
                with self._disk_full_as_one_line(step):
                    m.wait_until_finished()
                m.delete(step)
            items = dict(
                params=ocp.args.StandardSave(state.params),
                batch_stats=ocp.args.StandardSave(state.batch_stats),
                opt_state=ocp.args.StandardSave(state.opt_state),
                meta=ocp.args.JsonSave(meta),
            )
            if getattr(state, "ema", None) is not None:
                items["ema"] = ocp.args.StandardSave(state.ema)
            with self._disk_full_as_one_line(step):
                m.save(step, args=ocp.args.Composite(**items), force=True)
            self._saving_step = step

    def discard_after(self, step: int, log: Callable[[str], None] = print) -> None:
        """Deletes every kept step after `step` (all kinds): a resumed run recomputes them, and
        orbax refuses to save a step that exists (a `best` saved before a crash, a skipped
        unreadable `latest`)."""
        for kind, m in self._managers.items():
            later = [s for s in m.all_steps() if s > step]
            for s in later:
                m.delete(s)
            if later:
                log(f"removed {kind} checkpoint(s) {later} (after the resumed step {step}; "
                    "they are recomputed)")

    def restore_meta(self, step: int | None = None, kind: str = LATEST) -> dict:
        m = self._require(kind)
        step = m.latest_step() if step is None else step
        try:
            return self._restore(m, step, {"meta": ocp.args.JsonRestore()})["meta"]
        except CorruptCheckpointError as e:
            raise CorruptCheckpointError(f"{e}{self._other_steps_hint(step)}") from None

    def _other_steps_hint(self, step: int) -> str:
        others = sorted({s for m in self._managers.values() for s in m.all_steps()} - {step})
        return (f"; other kept steps: {others} (evaluate one with --step N)" if others
                else "; no other step is kept")

    def restore_train_state(self, state: Any, step: int | None = None, kind: str = LATEST,
                            sharding: jax.sharding.Sharding | None = None,
                            log: Callable[[str], None] = print) -> tuple[Any, dict]:
        """Restore a full TrainState shaped like `state` (params, batch_stats, opt_state, and
        `ema` when `state` keeps one) + meta.

        Without `step`: the newest readable kept step; unreadable newer ones are skipped and
        logged (CorruptCheckpointError if none can be read).
        """
        m = self._require(kind)
        candidates = [step] if step is not None else sorted(m.all_steps(), reverse=True)
        items = {
            "params": ocp.args.StandardRestore(_abstract(state.params, sharding)),
            "batch_stats": ocp.args.StandardRestore(_abstract(state.batch_stats, sharding)),
            "opt_state": ocp.args.StandardRestore(_abstract(state.opt_state, sharding)),
            "meta": ocp.args.JsonRestore(),
        }
        if getattr(state, "ema", None) is not None:
            items["ema"] = ocp.args.StandardRestore(_abstract(state.ema, sharding))
        skipped = []
        for s in candidates:
            try:
                restored = self._restore(m, s, items)
            except CorruptCheckpointError as e:
                skipped.append(str(e))
                continue
            if skipped:
                log(f"skipped unreadable checkpoint(s): {'; '.join(skipped)}; using step {s}")
            # The step counter lives in meta (orbax's step is the directory name).
            state = state.replace(step=int(restored["meta"]["step"]), params=restored["params"],
                                  batch_stats=restored["batch_stats"], opt_state=restored["opt_state"])
            if "ema" in items:
                state = state.replace(ema=restored["ema"])
            return state, restored["meta"]
        raise CorruptCheckpointError(f"no readable {kind} checkpoint: {'; '.join(skipped)}. Delete "
                                     f"{m.directory} to train from scratch")

    def restore_variables(self, abstract_variables: Any, step: int | None = None, kind: str = BEST,
                          sharding: jax.sharding.Sharding | None = None,
                          ema: bool = False) -> tuple[dict, dict, int]:
        """For evaluation: `{"params", "batch_stats"}` + meta + step, no optimizer state read.
        `ema`: the moving-average weights (the `ema` item) instead of the raw ones."""
        m = self._require(kind)
        step = m.latest_step() if step is None else step
        if step not in m.all_steps():
            raise FileNotFoundError(f"no {kind} checkpoint at step {step} in {m.directory} "
                                    f"(available: {sorted(m.all_steps())})")
        wanted = {"params": abstract_variables["params"], "batch_stats": abstract_variables["batch_stats"]}
        if ema:
            items = {"ema": ocp.args.StandardRestore(_abstract(wanted, sharding))}
        else:
            items = {name: ocp.args.StandardRestore(_abstract(tree, sharding)) for name, tree in wanted.items()}
        try:
            restored = self._restore(m, step, dict(items, meta=ocp.args.JsonRestore()))
        except CorruptCheckpointError as e:
            raise CorruptCheckpointError(f"{e}{self._other_steps_hint(step)}") from None
        variables = restored["ema"] if ema else {name: restored[name] for name in wanted}
        return dict(variables), restored["meta"], step

    def _restore(self, m: ocp.CheckpointManager, step: int, items: dict) -> dict:
        """`m.restore` of `items` at `step`; CorruptCheckpointError names the broken item."""
        try:
            return m.restore(step, args=ocp.args.Composite(**items))
        except Exception as whole:  # tensorstore, orbax and OS errors alike: the files are bad
            broken = []
            for name, arg in items.items():  # which item: restore each alone
                try:
                    m.restore(step, args=ocp.args.Composite(**{name: arg}))
                except Exception as e:
                    broken.append(f"item {name!r} ({_reason(e)})")
            raise CorruptCheckpointError(
                f"checkpoint {os.path.join(str(m.directory), str(step))} is unreadable: "
                f"{', '.join(broken) or _reason(whole)}") from None

    @contextlib.contextmanager
    def _disk_full_as_one_line(self, step: int | None = None) -> Iterator[None]:
        try:
            yield
        except Exception as e:
            if not _is_disk_full(e):
                raise
            self._failed = True
            step = step if step is not None else self._saving_step
            m = self._managers[LATEST]
            m.reload()  # what is committed on disk now (an uncommitted step is a tmp folder)
            raise DiskFullError(
                f"no space left on {self.root}: checkpoint at step {step} not "
                f"written; the last good checkpoint is step {m.latest_step()}") from None

    def _require(self, kind: str) -> ocp.CheckpointManager:
        m = self._managers.get(kind)
        if m is None or m.latest_step() is None:
            raise FileNotFoundError(f"no {kind} checkpoint under {self.root}: train first (train.py)")
        return m
