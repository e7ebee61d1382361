"""Input pipeline: a prepared dataset folder -> in-memory clip arrays -> per-device batches.

Datasets are written by `python -m data_prep` as TFDS TFRecords under
`DATA_DIR/tfds/sed_mixtures/snr_<snr>/<version>/` (one per SNR, splits `fold1`..`fold4`).
TensorFlow / tensorflow-datasets are imported lazily, only inside the functions that read
TFRecords (`import twostep_jax` never imports TF), and TF is hidden from every GPU first.

Flow (paper's protocol, ref §1.11): `load_folds` for the training folds and for the held-out
fold; `split_train_val` carves a validation subset out of the training folds for model
selection; `compute_norm_stats` on the training part only (per-mel-bin z-score);
`train_batches` / `eval_batches` yield numpy batches shaped [local_devices, per_device, ...];
`prefetch_to_device` puts them on the local devices in a background thread.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import queue
import threading
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

DATASET_NAME = "sed_mixtures"
DATASET_VERSION = "1.0.0"
NUM_FOLDS = 4


def config_name(snr_db: int | float) -> str:
    """TFDS config name of an SNR: 'snr_0', 'snr_10', ..."""
    if float(snr_db) != int(snr_db):
        raise ValueError(f"SNR must be a whole number of dB, got {snr_db}")
    return f"snr_{int(snr_db)}"


def hide_gpus_from_tf() -> None:
    """Stops TensorFlow from claiming GPU memory (JAX owns the accelerators).

    Call at entry points before any TF op. With tensorflow-cpu there is no GPU to hide; if TF
    was already initialised, set_visible_devices raises RuntimeError and the earlier setting
    stands (the first call in the process, made before any TF op, is the one that matters).
    """
    import tensorflow as tf

    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:
        pass


# ----------------------------------------------------------------------------- dataset folders


def dataset_dir(data_dir: str | Path, snr_db: int | float) -> Path:
    """The folder of a finished dataset (holding dataset_info.json) for one SNR.

    Accepts DATA_DIR (as given to `python -m data_prep --out`), a TFDS data_dir (holding
    `sed_mixtures/`), or the dataset version folder itself.
    """
    data_dir = Path(data_dir)
    rel = Path(DATASET_NAME) / config_name(snr_db) / DATASET_VERSION
    candidates = [data_dir, data_dir / "tfds" / rel, data_dir / rel]
    for path in candidates:
        if (path / "dataset_info.json").is_file() and (path / "metadata.json").is_file():
            return path
    staging = data_dir / "tfds" / f".staging-{config_name(snr_db)}"
    hint = (f" ({staging} exists: a build was interrupted; re-run data_prep to finish it)"
            if staging.exists() else "")
    raise FileNotFoundError(
        f"no finished {config_name(snr_db)} dataset under {data_dir}{hint}; looked for "
        f"dataset_info.json + metadata.json in: {', '.join(str(c) for c in candidates)}. "
        f"Build it with `python -m data_prep --source builtin --out {data_dir}` "
        f"(or --source dcase)")


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What training needs to know about a prepared dataset, read without TensorFlow."""

    path: Path  # dataset version folder
    snr_db: int
    class_names: tuple[str, ...]
    frames: int
    mels: int
    num_clips: dict[int, int]  # fold -> clips
    fingerprint: str  # stable identity (content-derived), for checkpoint metadata
    recipe: dict

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def load_dataset_info(data_dir: str | Path, snr: int | float) -> DatasetInfo:
    path = dataset_dir(data_dir, snr)
    info = json.loads((path / "dataset_info.json").read_text())
    meta = json.loads((path / "metadata.json").read_text())
    num_clips = {}
    for split in info.get("splits", []):
        if split["name"].startswith("fold"):
            num_clips[int(split["name"][4:])] = sum(int(n) for n in split["shardLengths"])
    features = json.loads((path / "features.json").read_text())
    shape = features["featuresDict"]["features"]["logmel"]["tensor"]["shape"]["dimensions"]
    identity = {
        "name": info.get("name"), "config": info.get("configName"),
        "version": info.get("version"), "recipe": meta.get("recipe"),
        "class_names": meta["class_names"],
        "splits": sorted((s["name"], s["shardLengths"], s.get("numBytes"))
                         for s in info.get("splits", [])),
    }
    fingerprint = hashlib.sha256(
        json.dumps(identity, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]
    return DatasetInfo(path=path, snr_db=int(meta["snr_db"]),
                       class_names=tuple(meta["class_names"]), frames=int(shape[0]),
                       mels=int(shape[1]), num_clips=dict(sorted(num_clips.items())),
                       fingerprint=fingerprint, recipe=meta.get("recipe", {}))


# ----------------------------------------------------------------------------- clip arrays


@dataclasses.dataclass
class ClipArrays:
    """A set of clips held in host memory (N clips, T frames, F mel bins, K classes)."""

    logmel: np.ndarray  # [N, T, F] float32, raw log-mel (not normalised)
    target: np.ndarray  # [N, K] float32 weak multi-hot
    mixture_name: np.ndarray  # [N] str
    fold: np.ndarray  # [N] int32
    events: list  # N lists of (label_index, onset_s, offset_s), seconds rounded to 1 us
    scene_label: np.ndarray  # [N] str

    def __len__(self) -> int:
        return self.logmel.shape[0]

    def take(self, indices: Sequence[int] | np.ndarray) -> "ClipArrays":
        idx = np.asarray(indices, dtype=np.int64)
        return ClipArrays(logmel=self.logmel[idx], target=self.target[idx],
                          mixture_name=self.mixture_name[idx], fold=self.fold[idx],
                          events=[self.events[i] for i in idx], scene_label=self.scene_label[idx])

    @classmethod
    def concatenate(cls, parts: Sequence["ClipArrays"]) -> "ClipArrays":
        if len(parts) == 1:
            return parts[0]
        return cls(logmel=np.concatenate([p.logmel for p in parts]),
                   target=np.concatenate([p.target for p in parts]),
                   mixture_name=np.concatenate([p.mixture_name for p in parts]),
                   fold=np.concatenate([p.fold for p in parts]),
                   events=[e for p in parts for e in p.events],
                   scene_label=np.concatenate([p.scene_label for p in parts]))


def check_finite(clips: ClipArrays) -> None:
    """Raises ValueError naming the clips whose log-mel holds NaN or inf."""
    bad = np.flatnonzero(~np.isfinite(clips.logmel).all(axis=(1, 2)))
    if bad.size:
        names = ", ".join(f"{clips.mixture_name[i]} (fold {clips.fold[i]})" for i in bad[:10])
        more = f" and {bad.size - 10} more" if bad.size > 10 else ""
        raise ValueError(f"non-finite (NaN/inf) log-mel values in clip(s) {names}{more}")


# (dataset folder, fingerprint, fold) -> decoded fold, read-only. ~80 kB per clip.
_FOLD_CACHE: dict[tuple[str, str, int], ClipArrays] = {}


def clear_cache() -> None:
    _FOLD_CACHE.clear()


class _DropTfdsDtypeWarning(logging.Filter):
    """tfds 4.9's own ZLIB tensor decoder reads the deprecated `FeatureConnector.dtype` and warns
    about it on every read; the warning is about tfds internals, not our code."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "FeatureConnector.dtype` is deprecated" not in record.getMessage()


def _read_fold(info: DatasetInfo, fold: int) -> ClipArrays:
    """Decodes one fold's TFRecords in file order (= mixture order)."""
    import tensorflow_datasets as tfds

    hide_gpus_from_tf()
    absl_logger = logging.getLogger("absl")
    if not any(isinstance(f, _DropTfdsDtypeWarning) for f in absl_logger.filters):
        absl_logger.addFilter(_DropTfdsDtypeWarning())
    builder = tfds.builder_from_directory(str(info.path))
    read_config = tfds.ReadConfig(try_autocache=False, interleave_cycle_length=1)
    ds = builder.as_dataset(split=f"fold{fold}", shuffle_files=False, read_config=read_config)
    n = info.num_clips[fold]
    logmel = np.empty((n, info.frames, info.mels), np.float32)
    target = np.empty((n, info.num_classes), np.float32)
    names, scenes, folds, events = [], [], [], []
    i = -1
    for i, ex in enumerate(tfds.as_numpy(ds.prefetch(64))):
        logmel[i] = ex["logmel"]
        target[i] = ex["target"]
        names.append(ex["mixture_name"].decode())
        scenes.append(ex["scene_label"].decode())
        folds.append(int(ex["fold"]))
        ev = ex["events"]
        # Times are stored as float32; rounding to 1 us gives back the spec's values.
        events.append([(int(label), round(float(on), 6), round(float(off), 6))
                       for label, on, off in zip(ev["label"], ev["onset"], ev["offset"])])
    if i + 1 != n:
        raise ValueError(f"{info.path}: fold{fold} holds {i + 1} clips, dataset_info says {n}")
    clips = ClipArrays(logmel=logmel, target=target, mixture_name=np.array(names, dtype=str),
                       fold=np.array(folds, np.int32), events=events,
                       scene_label=np.array(scenes, dtype=str))
    check_finite(clips)
    for arr in (clips.logmel, clips.target, clips.mixture_name, clips.fold, clips.scene_label):
        arr.setflags(write=False)  # shared through the cache
    return clips


def load_folds(data_dir: str | Path, snr: int | float, folds: Iterable[int]) -> ClipArrays:
    """All clips of `folds` (in the given fold order, mixture order within a fold).

    Decoded folds are cached in memory for the life of the process (read-only arrays); asking
    for several folds returns a fresh concatenation.
    """
    info = load_dataset_info(data_dir, snr)
    folds = [int(f) for f in folds]
    if not folds:
        raise ValueError("no folds requested")
    for f in folds:
        if f not in info.num_clips:
            raise ValueError(f"fold {f} not in {info.path} (folds: {sorted(info.num_clips)})")
    parts = []
    for f in folds:
        key = (str(info.path.resolve()), info.fingerprint, f)
        if key not in _FOLD_CACHE:
            _FOLD_CACHE[key] = _read_fold(info, f)
        parts.append(_FOLD_CACHE[key])
    return ClipArrays.concatenate(parts)


def split_train_val(clips: ClipArrays, val_fraction: float = 0.1,
                    seed: int = 0) -> tuple[ClipArrays, ClipArrays]:
    """Deterministic random split of training-fold clips into (train, val), each in input order.

    Note: mixtures of one fold share event files (the recipe reuses each verified clip several
    times), so this validation set is easier than the held-out fold; it is for model selection,
    the held-out fold stays the reported test.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n = len(clips)
    n_val = max(1, int(round(n * val_fraction)))
    if n_val >= n:
        raise ValueError(f"cannot carve a validation set from {n} clip(s)")
    perm = np.random.default_rng(seed).permutation(n)
    return clips.take(np.sort(perm[n_val:])), clips.take(np.sort(perm[:n_val]))


# ----------------------------------------------------------------------------- normalisation


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


def _per_device(global_batch: int, num_devices: int, process_count: int) -> int:
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
    per_device = _per_device(global_batch, num_devices, process_count)
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
    per_device = _per_device(global_batch, num_devices, process_count)
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
                       host_keys: Sequence[str] = ("index",)) -> Iterator[dict]:
    """Device-puts up to `size` batches ahead in a background thread (see shard_to_local_devices).

    Errors in the source iterator are re-raised in the consumer; closing the generator stops
    the thread.
    """
    if size < 1:
        raise ValueError(f"prefetch size must be >= 1, got {size}")
    q: queue.Queue = queue.Queue(maxsize=size)
    stop = threading.Event()

    def put(item) -> bool:
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
                if not put(shard_to_local_devices(batch, devices, host_keys)):
                    return
            put(_END)
        except BaseException as e:  # re-raised in the consumer thread
            put(_Failure(e))

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
