"""Batches for the devices: per-mel-bin normalisation, training/evaluation batches, prefetch.

`compute_norm_stats` on the training clips only (per-mel-bin z-score); `train_batches` /
`eval_batches` yield numpy batches shaped [local_devices, per_device, ...];
`prefetch_to_device` puts them on the local devices in a background thread.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from twostep_jax.data.dataset import ClipArrays, check_finite


@dataclasses.dataclass(frozen=True)
class NormStats:
    """Per-mel-bin z-score statistics: mean [F], std [F] float32."""

    mean: np.ndarray
    std: np.ndarray

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "NormStats":
        return cls(mean=np.asarray(d["mean"], np.float32), std=np.asarray(d["std"], np.float32))


MIN_STD = 1e-6  # floor for a constant mel bin (would otherwise divide by zero)


def compute_norm_stats(clips: ClipArrays, chunk: int = 512) -> NormStats:
    """Mean and std per mel bin over all (clip, frame) pairs; pass training clips only.

    Two passes in float64 over chunks of clips (exact, and no float64 copy of the whole set).
    """
    if len(clips) == 0:
        raise ValueError("no clips to compute normalisation statistics from")
    check_finite(clips)
    n = len(clips) * clips.logmel.shape[1]
    total = np.zeros(clips.logmel.shape[2])
    for s in range(0, len(clips), chunk):
        total += clips.logmel[s:s + chunk].sum(axis=(0, 1), dtype=np.float64)
    mean = total / n
    sq = np.zeros_like(mean)
    for s in range(0, len(clips), chunk):
        sq += np.square(clips.logmel[s:s + chunk] - mean).sum(axis=(0, 1))
    std = np.maximum(np.sqrt(sq / n), MIN_STD)
    return NormStats(mean=mean.astype(np.float32), std=std.astype(np.float32))


def normalize(logmel: np.ndarray, stats: NormStats) -> np.ndarray:
    """(logmel - mean) / std per mel bin; logmel [..., F] -> same shape float32."""
    return ((logmel - stats.mean) / stats.std).astype(np.float32, copy=False)


# ----------------------------------------------------------------------------- batching


def steps_per_epoch(n_clips: int, global_batch: int) -> int:
    """Training steps per epoch (the last partial batch is dropped)."""
    return n_clips // global_batch


def per_device_batch(global_batch: int, num_devices: int, process_count: int) -> int:
    if global_batch <= 0 or num_devices <= 0 or process_count <= 0:
        raise ValueError(f"global_batch ({global_batch}), num_devices ({num_devices}) and "
                         f"process_count ({process_count}) must be positive")
    if global_batch % (num_devices * process_count):
        raise ValueError(
            f"global batch {global_batch} is not divisible by num_devices x process_count = "
            f"{num_devices} x {process_count}; choose a multiple of {num_devices * process_count}")
    return global_batch // (num_devices * process_count)


def _batch(clips: ClipArrays, stats: NormStats, idx: np.ndarray, num_devices: int,
           per_device: int) -> dict[str, np.ndarray]:
    """Gathers, normalises and lays out clips `idx` (valid indices) as [D, B, ...]."""
    logmel = normalize(clips.logmel[idx], stats)
    return {"logmel": logmel.reshape(num_devices, per_device, *logmel.shape[1:]),
            "target": clips.target[idx].reshape(num_devices, per_device, -1)}


def train_batches(clips: ClipArrays, stats: NormStats, global_batch: int, seed: int, epoch: int,
                  num_devices: int, process_index: int = 0, process_count: int = 1,
                  start_step: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """One epoch of shuffled training batches for this process.

    Yields {"logmel": [D, B, T, F] float32 (normalised), "target": [D, B, K] float32} where
    D = num_devices (local) and B = global_batch / (D * process_count). The shuffle is a
    function of (seed, epoch) only, identical on every process; process p takes the p-th
    contiguous slice of each global batch. The last partial batch is dropped. `start_step`
    skips the first steps of the epoch (exact resume).
    """
    per_device = per_device_batch(global_batch, num_devices, process_count)
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} not in [0, {process_count})")
    steps = steps_per_epoch(len(clips), global_batch)
    if steps == 0:
        raise ValueError(f"{len(clips)} clips are fewer than one global batch of {global_batch}")
    perm = np.random.default_rng([seed, epoch]).permutation(len(clips))
    local = num_devices * per_device
    for step in range(start_step, steps):
        idx = perm[step * global_batch:(step + 1) * global_batch]
        yield _batch(clips, stats, idx[process_index * local:(process_index + 1) * local],
                     num_devices, per_device)


def eval_batches(clips: ClipArrays, stats: NormStats, global_batch: int, num_devices: int,
                 process_index: int = 0,
                 process_count: int = 1) -> Iterator[dict[str, np.ndarray]]:
    """Every clip exactly once, in order; the last batch padded.

    Yields {"logmel": [D, B, T, F], "target": [D, B, K], "mask": [D, B] float32 (1 = real clip,
    0 = padding), "index": [D, B] int64 (clip index into `clips`, -1 for padding)}.
    """
    per_device = per_device_batch(global_batch, num_devices, process_count)
    local = num_devices * per_device
    for start in range(0, len(clips), global_batch):
        idx = np.full(global_batch, -1, np.int64)
        real = np.arange(start, min(start + global_batch, len(clips)))
        idx[:len(real)] = real
        idx = idx[process_index * local:(process_index + 1) * local]
        mask = idx >= 0
        batch = _batch(clips, stats, np.where(mask, idx, 0), num_devices, per_device)
        batch["logmel"][~mask.reshape(num_devices, per_device)] = 0.0
        batch["target"][~mask.reshape(num_devices, per_device)] = 0.0
        batch["mask"] = mask.astype(np.float32).reshape(num_devices, per_device)
        batch["index"] = idx.reshape(num_devices, per_device)
        yield batch


# ----------------------------------------------------------------------------- devices


def shard_to_local_devices(batch: dict[str, Any], devices=None,
                           host_keys: Sequence[str] = ("index",)) -> dict[str, Any]:
    """Puts each [D, ...] array on the D local devices: slice i on device i (pmap layout).

    The result is a jax.Array with a NamedSharding over a 1-D mesh of the devices, split along
    axis 0, which `jax.pmap` consumes without resharding. Keys in `host_keys` stay numpy.
    """
    import jax

    devices = list(devices or jax.local_devices())
    mesh = jax.sharding.Mesh(np.asarray(devices), ("devices",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("devices"))
    out = {}
    for key, value in batch.items():
        if key in host_keys:
            out[key] = value
            continue
        if value.shape[0] != len(devices):
            raise ValueError(f"batch[{key!r}] has leading axis {value.shape[0]}, "
                             f"expected {len(devices)} (local devices)")
        out[key] = jax.device_put(value, sharding)
    return out


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


_END = object()


def prefetch_to_device(iterator: Iterable[dict], size: int = 2, devices=None,
                       host_keys: Sequence[str] = ("index",),
                       put: Callable[[dict], dict] | None = None) -> Iterator[dict]:
    """Device-puts up to `size` batches ahead in a background thread (`put`, default
    shard_to_local_devices: the pmap layout; `train.parallel` passes its own).

    Errors in the source iterator are re-raised in the consumer; closing the generator stops
    the thread.
    """
    if size < 1:
        raise ValueError(f"prefetch size must be >= 1, got {size}")
    q: queue.Queue = queue.Queue(maxsize=size)
    stop = threading.Event()

    def enqueue(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in iterator:
                if not enqueue(put(batch) if put is not None
                               else shard_to_local_devices(batch, devices, host_keys)):
                    return
            enqueue(_END)
        except BaseException as e:  # re-raised in the consumer thread
            enqueue(_Failure(e))

    thread = threading.Thread(target=produce, name="prefetch_to_device", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()
        thread.join(timeout=5.0)
