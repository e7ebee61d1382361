"""The two data-parallel forms of the one pure `train.step.train_step`: `pmap` and `sharded`.

    form = parallel_form("sharded")               # or "pmap" (the design card's default)
    model = model_from_config(cfg, axis_name=form.axis_name)
    train_step, eval_step = form.make_train_step(model, alpha), form.make_eval_step(model)
    state = form.put_state(state)                  # once, before the first step
    state, metrics = train_step(state, form.put_batch(host_batch), rng)
    rows = form.local_rows(eval_step(state, form.put_batch({"logmel": x})))

Both take the host batches of `data.input_pipeline` (leaves `[local_devices, per_device, ...]`,
this process's slice of the global batch) and compute exactly the single-device step on the
global batch (all processes, all devices):

* `pmap`: `jax.pmap(axis_name="batch")`, state unmapped (`in_axes=None`), batch mapped over the
  local devices; gradients, loss terms and BatchNorm statistics are `pmean`ed over the axis.
  `jax.pmap` is in maintenance mode since JAX 0.8 (implemented as `jit(shard_map)`).
* `sharded`: `jax.jit` over a 1-D `Mesh(jax.devices(), ("data",))`: state replicated (`P()`),
  batch `NamedSharding(mesh, P("data"))` built with `jax.make_array_from_process_local_data`.
  The model runs with `axis_name=None`: under SPMD jit the BatchNorm mean/variance over the
  batch axis are global reductions that XLA partitions itself (tests check they equal the
  single-device statistics), so no collective is written by hand.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import numpy as np

from twostep_jax.config import PARALLEL_FORMS
from twostep_jax.data.input_pipeline import prefetch_to_device, shard_to_local_devices
from twostep_jax.model.models import SEDModel
from twostep_jax.train.step import AXIS, eval_step, make_eval_step, make_train_step, train_step

DATA_AXIS = "data"


def _rows_in_order(x: jax.Array) -> np.ndarray:
    """This process's shards of `x` (split along axis 0) concatenated in global order."""
    if not isinstance(x, jax.Array):
        return np.asarray(x)
    shards = sorted(x.addressable_shards, key=lambda s: s.index[0].start or 0)
    seen, parts = set(), []
    for s in shards:
        start = s.index[0].start or 0
        if start not in seen:  # a replicated axis-0 block appears once per device holding it
            seen.add(start)
            parts.append(np.asarray(s.data))
    return np.concatenate(parts)


def _replicate(tree: Any, sharding: jax.sharding.NamedSharding) -> Any:
    """Every leaf as a global array replicated with `sharding` (same value on every process)."""

    def put(x):
        if isinstance(x, jax.Array) and x.sharding == sharding:
            return x
        host = np.asarray(jax.device_get(x))
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(put, tree)


@dataclasses.dataclass(frozen=True)
class ParallelForm:
    """How to compile the steps of one parallel form and how to feed them."""

    name: str
    devices: tuple | None = None  # default: all devices of all processes (benchmarks pick fewer)

    @property
    def local_devices(self) -> list:
        if self.devices is None:
            return jax.local_devices()
        return [d for d in self.devices if d.process_index == jax.process_index()]

    @property
    def axis_name(self) -> str | None:
        """The `axis_name` the model's BatchNorm (and the step's `pmean`s) must use."""
        return AXIS if self.name == "pmap" else None

    @functools.cached_property
    def mesh(self) -> jax.sharding.Mesh:
        """`sharded`: every device of every process on one `data` axis (process-major order)."""
        return jax.sharding.Mesh(np.asarray(self.devices or jax.devices()), (DATA_AXIS,))

    def _sharding(self, spec: jax.sharding.PartitionSpec) -> jax.sharding.NamedSharding:
        return jax.sharding.NamedSharding(self.mesh, spec)

    def make_train_step(self, model: SEDModel, alpha: float) -> Callable:
        """`(state, batch, rng) -> (state, metrics)`, state donated; metrics are replicated scalars."""
        if (model.axis_name or None) != self.axis_name:
            raise ValueError(f"parallel form {self.name!r} needs model.axis_name={self.axis_name!r}, "
                             f"got {model.axis_name!r}")
        if self.name == "pmap":
            return make_train_step(model, alpha, AXIS)
        step = functools.partial(train_step, model=model, alpha=alpha, axis_name=None)
        replicated = self._sharding(jax.sharding.PartitionSpec())
        return jax.jit(step, out_shardings=(replicated, replicated), donate_argnums=(0,))

    def make_eval_step(self, model: SEDModel) -> Callable:
        """`(variables or state, {"logmel"}) -> {"clip_probs", "frame_probs"}`, batch-sharded out."""
        if self.name == "pmap":
            return make_eval_step(model, pmapped=True)
        step = functools.partial(eval_step, model=model.clone(axis_name=None))
        return jax.jit(step, out_shardings=self._sharding(jax.sharding.PartitionSpec(DATA_AXIS)))

    def put_state(self, tree: Any) -> Any:
        """Every leaf replicated as the step returns it, so the second step reuses the first
        one's compilation: `sharded` over the mesh (identical value on every process); `pmap` over
        this process's devices on its `batch` axis (pmap, now `jit(shard_map)`, compiles again
        for an unmapped argument on one device)."""
        if self.name == "pmap":
            mesh = jax.sharding.Mesh(np.asarray(self.local_devices), (AXIS,))
            return _replicate(tree, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))
        return _replicate(tree, self._sharding(jax.sharding.PartitionSpec()))

    def to_global(self, tree: Any) -> Any:
        """The state as arrays over all processes' devices, which orbax can save from several
        processes: multi-process pmap returns process-local replicated arrays, converted here."""
        if self.name == "sharded" or jax.process_count() == 1:
            return tree
        return _replicate(tree, self._sharding(jax.sharding.PartitionSpec()))

    def put_batch(self, batch: dict[str, Any], host_keys=("index", "mask")) -> dict[str, Any]:
        """Host batch `[local_devices, per_device, ...]` -> device arrays this form's steps take.

        `pmap`: the same layout, one slice per local device. `sharded`: one global array
        `[global_batch, ...]` split over the `data` axis, this process contributing its rows.
        Keys in `host_keys` stay numpy (bookkeeping, never fed to a step).
        """
        if self.name == "pmap":
            return shard_to_local_devices(batch, self.local_devices, host_keys=host_keys)
        sharding = self._sharding(jax.sharding.PartitionSpec(DATA_AXIS))
        out = {}
        for key, value in batch.items():
            if key in host_keys:
                out[key] = value
                continue
            value = np.asarray(value)
            if value.shape[0] != len(self.local_devices):
                raise ValueError(f"batch[{key!r}] has leading axis {value.shape[0]}, expected "
                                 f"{len(self.local_devices)} (local devices)")
            local = value.reshape((-1,) + value.shape[2:])
            out[key] = jax.make_array_from_process_local_data(sharding, local)
        return out

    def prefetch(self, batches, size: int = 2):
        """`put_batch` on each host batch, `size` batches ahead in a background thread."""
        return prefetch_to_device(batches, size, put=self.put_batch)

    def local_rows(self, x: Any) -> np.ndarray:
        """An eval output of this process's examples as numpy `[local_examples, ...]`, in the order
        of the host batch's rows (`[D, B]` flattened)."""
        rows = _rows_in_order(x)
        if self.name == "pmap":  # [local_devices, B, ...] -> [local_devices * B, ...]
            rows = rows.reshape((-1,) + rows.shape[2:])
        return rows


def parallel_form(name: str, devices=None) -> ParallelForm:
    """The form `name` over `devices` (default: every device of every process)."""
    if name not in PARALLEL_FORMS:
        raise ValueError(f"unknown parallel form {name!r}; choose one of {PARALLEL_FORMS}")
    return ParallelForm(name, None if devices is None else tuple(devices))


def gather_processes(tree: Any) -> Any:
    """Concatenates host numpy arrays along axis 0 over all processes (process order); the
    identity with one process. Every process must call it with the same shapes."""
    if jax.process_count() == 1:
        return tree
    from jax.experimental import multihost_utils

    return jax.tree.map(np.asarray, multihost_utils.process_allgather(tree, tiled=True))
