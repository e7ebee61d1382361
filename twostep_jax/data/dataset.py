"""The prepared dataset on disk: folder layout, info, fold loading and the run's splits.

Datasets are written by `python -m data_prep` as TFDS TFRecords under
`DATA_DIR/tfds/sed_mixtures/snr_<snr>/<version>/` (one per SNR, splits `fold1`..`fold4`).
Folds are read by the TensorFlow-free reader (`data.tfrecord`: numpy + protobuf) or by tf.data
(`reader`/$TWOSTEP_DATA_READER: auto = tf.data where TensorFlow is installed); both give
bit-identical arrays. TensorFlow is imported lazily, only by the tf.data reader (`import
twostep_jax` never imports TF), and TF is hidden from every GPU first.

Splits of a run (paper's protocol, ref §1.11): `test` = the held-out fold; `train` / `val` = the
training folds, with `val` carved out of them for model selection (`split_train_val`), or the
held-out fold itself with `select_on_test_fold` (the released code's choice).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

DATASET_NAME = "sed_mixtures"
DATASET_VERSION = "1.0.0"
NUM_FOLDS = 4
PAPER_SNRS = (0, 10, 20)  # the paper's mixing SNRs in dB (Tables IV, V)
SPLITS = ("test", "val", "train")


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
    if not tensorflow_available():  # a TF-free host: nothing to hide
        return
    import tensorflow as tf

    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:
        pass


# ----------------------------------------------------------------------------- dataset folders


def dataset_version_dir(data_dir: str | Path, snr_db: int | float) -> Path:
    """Where data_prep puts the finished dataset for `snr_db` under DATA_DIR."""
    return Path(data_dir) / "tfds" / DATASET_NAME / config_name(snr_db) / DATASET_VERSION


def staging_dir(data_dir: str | Path, snr_db: int | float) -> Path:
    """Where data_prep builds a dataset before renaming it into place (never read as data)."""
    return Path(data_dir) / "tfds" / f".staging-{config_name(snr_db)}"


def dataset_dir(data_dir: str | Path, snr_db: int | float) -> Path:
    """The folder of a finished dataset (holding dataset_info.json) for one SNR.

    Accepts DATA_DIR (as given to `python -m data_prep --out`), a TFDS data_dir (holding
    `sed_mixtures/`), or the dataset version folder itself.
    """
    data_dir = Path(data_dir)
    if not data_dir.exists():
        raise FileNotFoundError(f"data folder {data_dir} does not exist; build a dataset with "
                                f"`python -m data_prep --source builtin --out {data_dir}`")
    rel = Path(DATASET_NAME) / config_name(snr_db) / DATASET_VERSION
    candidates = [data_dir, dataset_version_dir(data_dir, snr_db), data_dir / rel]
    for path in candidates:
        if (path / "dataset_info.json").is_file() and (path / "metadata.json").is_file():
            return path
    staging = staging_dir(data_dir, snr_db)
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

    def check_fits(self, model_cfg: Any) -> None:
        """Raises ValueError unless the model (a ModelConfig) takes this dataset's clips."""
        if self.num_classes != model_cfg.classes or (self.frames, self.mels) != (model_cfg.frames,
                                                                                 model_cfg.mels):
            raise ValueError(
                f"dataset {self.path} has {self.num_classes} classes and [{self.frames}, "
                f"{self.mels}] log-mels, but model {model_cfg.name!r} expects {model_cfg.classes} "
                f"classes and [{model_cfg.frames}, {model_cfg.mels}]: override "
                "--classes/--frames/--mels or use matching data")


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


READERS = ("auto", "tfrecord", "tfds")
READER_ENV = "TWOSTEP_DATA_READER"  # overrides the default reader ("auto")


def tensorflow_available() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("tensorflow") is not None and \
            importlib.util.find_spec("tensorflow_datasets") is not None
    except (ImportError, ValueError):
        return False


def resolve_reader(reader: str | None = None) -> str:
    """"tfrecord" (TF-free, data/tfrecord.py) or "tfds" (tf.data): `reader`, else
    $TWOSTEP_DATA_READER, else "auto" = tfds where TensorFlow is installed, tfrecord otherwise."""
    import os

    reader = reader or os.environ.get(READER_ENV) or "auto"
    if reader not in READERS:
        raise ValueError(f"unknown data reader {reader!r} ({READER_ENV}); choose one of {READERS}")
    if reader == "auto":
        return "tfds" if tensorflow_available() else "tfrecord"
    return reader


def _fold_examples(info: DatasetInfo, fold: int, reader: str) -> Iterator[dict]:
    """The decoded examples of one fold, in file order, as numpy dicts (tfds.as_numpy's form)."""
    if reader == "tfrecord":
        from twostep_jax.data import tfrecord

        paths = sorted(info.path.glob(f"{DATASET_NAME}-fold{fold}.tfrecord-*"))
        if not paths:
            raise FileNotFoundError(f"{info.path}: no TFRecord shards of fold{fold}")
        yield from tfrecord.read_examples(paths, tfrecord.load_features_json(info.path))
        return
    import tensorflow_datasets as tfds

    hide_gpus_from_tf()
    absl_logger = logging.getLogger("absl")
    if not any(isinstance(f, _DropTfdsDtypeWarning) for f in absl_logger.filters):
        absl_logger.addFilter(_DropTfdsDtypeWarning())
    builder = tfds.builder_from_directory(str(info.path))
    read_config = tfds.ReadConfig(try_autocache=False, interleave_cycle_length=1)
    ds = builder.as_dataset(split=f"fold{fold}", shuffle_files=False, read_config=read_config)
    yield from tfds.as_numpy(ds.prefetch(64))


def _read_fold(info: DatasetInfo, fold: int, reader: str | None = None) -> ClipArrays:
    """Decodes one fold's TFRecords in file order (= mixture order) with `reader`
    (`resolve_reader`: the TF-free reader or tf.data; both give identical arrays)."""
    n = info.num_clips[fold]
    logmel = np.empty((n, info.frames, info.mels), np.float32)
    target = np.empty((n, info.num_classes), np.float32)
    names, scenes, folds, events = [], [], [], []
    i = -1
    for i, ex in enumerate(_fold_examples(info, fold, resolve_reader(reader))):
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
    n = len(clips)
    n_val = validation_count(n, val_fraction)
    perm = np.random.default_rng(seed).permutation(n)
    return clips.take(np.sort(perm[n_val:])), clips.take(np.sort(perm[:n_val]))


def validation_count(n: int, val_fraction: float) -> int:
    """Clips `split_train_val` carves for validation out of `n` training-fold clips."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n_val = max(1, int(round(n * val_fraction)))
    if n_val >= n:
        raise ValueError(f"cannot carve a validation set from {n} clip(s)")
    return n_val


def split_sizes(info: DatasetInfo, config: Any) -> dict[str, int]:
    """Clips per split of a run (a TrainConfig) from the dataset info alone (nothing decoded)."""
    missing = [f for f in (*config.train_folds, config.test_fold) if f not in info.num_clips]
    if missing:
        raise ValueError(f"fold(s) {missing} not in {info.path} (folds: {sorted(info.num_clips)})")
    n = sum(info.num_clips[f] for f in config.train_folds)
    test = info.num_clips[config.test_fold]
    if config.select_on_test_fold:
        return {"train": n, "val": test, "test": test}
    n_val = validation_count(n, config.val_fraction)
    return {"train": n - n_val, "val": n_val, "test": test}


def training_splits(config: Any) -> tuple[DatasetInfo, ClipArrays, ClipArrays]:
    """(dataset info, train clips, validation clips) of a run (a TrainConfig).

    Checks that the data fits the model before any clip is decoded.
    """
    info = load_dataset_info(config.data_dir, config.snr)
    info.check_fits(config.model_config())
    clips = load_folds(config.data_dir, config.snr, config.train_folds)
    if config.select_on_test_fold:
        return info, clips, load_folds(config.data_dir, config.snr, (config.test_fold,))
    train, val = split_train_val(clips, config.val_fraction, config.seed)
    return info, train, val


def load_split(config: Any, split: str) -> tuple[DatasetInfo, ClipArrays]:
    """(dataset info, clips) of one of `SPLITS` for a run; `val`/`train` are the very clips
    training used (same carve, by construction)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    if not config.data_dir:
        raise ValueError("the run records no data directory: pass --data DATA_DIR")
    if split == "test":
        info = load_dataset_info(config.data_dir, config.snr)
        info.check_fits(config.model_config())
        return info, load_folds(config.data_dir, config.snr, (config.test_fold,))
    info, train, val = training_splits(config)
    return info, (val if split == "val" else train)
