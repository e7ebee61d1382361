"""The tensorflow-datasets builder: precomputed recipe features -> TFRecord shards per fold.

`SedMixtures` is a `tfds.core.GeneratorBasedBuilder` with one config per SNR (`snr_0`, `snr_10`,
`snr_20`; `builder_class` makes the config for any integer SNR, class list and recipe record)
and splits `fold1`..`fold4`. Its manual_dir is
the worker stage's work folder (`mixture_spec.json` + `snr_<snr>/<start>-<stop>.npy` chunks, see
`data_prep.render`), so the generator only reads arrays and labels; nothing is computed here.

Driven from Python (`build_snr_dataset`), never from the `tfds` CLI (which needs apache_beam).
Bytes are reproducible: examples are serialised with protobuf's deterministic map order (tfds'
default order of the feature map follows Python's per-process string hashing), so equal datasets
hash equal. tfds' "Downloading and preparing dataset" banner is silenced: nothing is downloaded,
and data_prep prints its own progress lines.
Examples are written in mixture order (`disable_shuffling`), so readers get a deterministic,
documented order. The class list and the recipe parameters travel with the dataset: ClassLabel
names of `events/label`, `metadata.json` (`class_names`, `recipe`) and the description.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core import example_serializer

from data_prep.recipe import MixtureSpec
from data_prep.render import chunk_file, plan_chunks
from twostep_jax.data import features
from twostep_jax.data.dataset import DATASET_NAME, DATASET_VERSION, NUM_FOLDS, PAPER_SNRS, config_name

_DESCRIPTION = """\
Weakly labelled sound event detection mixtures made with the 2APAE paper's recipe
(Deshmukh, Raj, Singh; Kong et al.'s sed_time_freq_segmentation mixing): 10 s clips at 32 kHz,
three events per clip at 0.5/3.0/5.5 s (first <= 2 s of each file), per-event SNR of the whole
event file's RMS versus the RMS-1 scene, joint peak normalisation, mixture = mean of the two
tracks. Features: symmetric Hamming 2048 magnitude spectrogram, hop 1024, no centring
(311 frames), Slaney mel 64 bands 50-16000 Hz on magnitude, natural log(x + 1e-8).
"""


@dataclasses.dataclass(eq=False)
class MixtureConfig(tfds.core.BuilderConfig):
    """One SNR. `class_names` and `recipe` (JSON) are filled in by `mixture_config`."""

    snr_db: int = 0
    class_names: tuple[str, ...] = features.FSD_CLASS_NAMES
    recipe: str = "{}"


def mixture_config(snr_db: int, class_names=features.FSD_CLASS_NAMES,
                   recipe: dict | None = None) -> MixtureConfig:
    recipe = dict(recipe or {})
    return MixtureConfig(
        name=config_name(snr_db), version=DATASET_VERSION, snr_db=int(snr_db),
        class_names=tuple(class_names), recipe=json.dumps(recipe, sort_keys=True),
        description=f"Mixtures at {snr_db} dB SNR.")


class SedMixtures(tfds.core.GeneratorBasedBuilder):
    """2APAE / Kong mixtures: log-mel [311, 64], weak multi-hot, strong labels, per fold."""

    VERSION = tfds.core.Version(DATASET_VERSION)
    RELEASE_NOTES = {DATASET_VERSION: "Kong's recipe (TAU 2019 scenes); features as ref §2.5."}
    BUILDER_CONFIGS = [mixture_config(s) for s in PAPER_SNRS]
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Run `python -m data_prep ...`: it renders the mixtures' features into a work folder and "
        "passes it as manual_dir.")

    def _info(self) -> tfds.core.DatasetInfo:
        cfg: MixtureConfig = self.builder_config
        num_classes = len(cfg.class_names)
        recipe = json.loads(cfg.recipe)
        recipe.pop("class_names", None)  # in the ClassLabel names and metadata.json instead
        return self.dataset_info_from_configs(
            description=(_DESCRIPTION + f"\nSNR: {cfg.snr_db} dB.\n"
                         f"Recipe: {json.dumps(recipe, sort_keys=True)}\n"),
            features=tfds.features.FeaturesDict({
                "logmel": tfds.features.Tensor(
                    shape=(features.FRAMES, features.N_MELS), dtype=np.float32,
                    encoding=tfds.features.Encoding.ZLIB),
                "target": tfds.features.Tensor(shape=(num_classes,), dtype=np.float32),
                "events": tfds.features.Sequence({
                    "label": tfds.features.ClassLabel(names=list(cfg.class_names)),
                    # seconds; tf.train.Example stores floats as float32 (~0.5 us at 10 s)
                    "onset": np.float32,
                    "offset": np.float32,
                }),
                "scene_label": tfds.features.Text(),
                "snr_db": np.float32,
                "mixture_name": tfds.features.Text(),
                "fold": np.int32,
            }),
            disable_shuffling=True,  # keep mixture order: reproducible reads, simple eval mapping
            metadata=tfds.core.MetadataDict(
                class_names=list(cfg.class_names), snr_db=cfg.snr_db,
                recipe=json.loads(cfg.recipe),
                classes_without_verified_clips=json.loads(cfg.recipe).get(
                    "classes_without_verified_clips", [])),
        )

    def _log_download_bytes(self) -> None:
        """tfds' banner ("Downloading and preparing dataset Unknown size ..."): data_prep logs
        its own line; nothing is downloaded."""

    def _log_download_done(self) -> None:
        """tfds' "Dataset ... downloaded and prepared" line: data_prep logs its own."""

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        work_dir = Path(dl_manager.manual_dir)
        spec = MixtureSpec.load(work_dir / "mixture_spec.json")
        if tuple(spec.class_names) != tuple(self.builder_config.class_names):
            raise ValueError("builder config class names differ from the mixture spec's")
        return {f"fold{f}": self._generate_examples(work_dir, spec, f)
                for f in range(1, NUM_FOLDS + 1)}

    def _generate_examples(self, work_dir: Path, spec: MixtureSpec, fold: int):
        snr = self.builder_config.snr_db
        index = {name: i for i, name in enumerate(spec.class_names)}
        for chunk in plan_chunks(spec):
            if chunk.fold != fold:
                continue
            logmels = np.load(chunk_file(work_dir, snr, chunk), mmap_mode="r")
            for i, mixture in enumerate(spec.mixtures[chunk.start:chunk.stop]):
                target = np.zeros(len(spec.class_names), np.float32)
                for ev in mixture.events:
                    target[index[ev.event_label]] = 1.0
                yield mixture.mixture_name, {
                    "logmel": np.asarray(logmels[i]),
                    "target": target,
                    "events": {"label": [ev.event_label for ev in mixture.events],
                               "onset": [ev.onset for ev in mixture.events],
                               "offset": [ev.offset for ev in mixture.events]},
                    "scene_label": mixture.scene_label,
                    "snr_db": float(snr),
                    "mixture_name": mixture.mixture_name,
                    "fold": mixture.fold,
                }


assert SedMixtures.name == DATASET_NAME, SedMixtures.name


def builder_class(config: MixtureConfig) -> type[SedMixtures]:
    """`SedMixtures` whose only config is `config`.

    TFDS refuses a custom config named like a registered one ('snr_0'), yet the class list and
    recipe differ per dataset (FSD names vs builtin names); an unregistered subclass with its
    own BUILDER_CONFIGS keeps the dataset name and config name while carrying them.
    """

    class ConfiguredSedMixtures(SedMixtures, skip_registration=True):
        name = DATASET_NAME
        BUILDER_CONFIGS = [config]

    return ConfiguredSedMixtures


def _serialize_deterministically(self, example) -> bytes:
    return self.get_tf_example(example).SerializeToString(deterministic=True)


def build_snr_dataset(work_dir: Path, staging_dir: Path, snr_db: int, class_names,
                      recipe: dict) -> Path:
    """Writes the TFRecord dataset for one SNR under `staging_dir`; returns its version folder."""
    config = mixture_config(snr_db, class_names, recipe)
    tfds.disable_progress_bar()  # data_prep reports its own progress
    # tfds builds its serializer inside the split writer, with no hook to pass one in: replace
    # the method for this (data_prep worker) process so shard bytes do not depend on the hash seed.
    example_serializer.ExampleSerializer.serialize_example = _serialize_deterministically
    builder = builder_class(config)(config=config.name, data_dir=str(staging_dir))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=str(work_dir), compute_stats=tfds.download.ComputeStatsMode.SKIP))
    return Path(str(builder.data_dir))


__all__ = ["DATASET_NAME", "MixtureConfig", "SedMixtures", "build_snr_dataset",
           "builder_class", "mixture_config"]
