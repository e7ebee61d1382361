"""Kong's mixture recipe (ref §2.2-2.3): event folds and the mixture specification.

* Folds (`create_folds`): `RandomState(1234)` shuffles the event CSV's row indices; the row at
  shuffled position n gets fold (n mod 4) + 1. Folds are defined on event clips (all rows).
* Specification (`create_mixture_yaml`): one `RandomState(seed=1234)`; the scene list (meta.csv
  order) is shuffled once and mixture k uses scene k; per fold 1..4 the fold's manually verified
  clips (CSV order) are shuffled-and-repeated to 3 x mixtures_per_fold positions, and mixture n of
  the fold takes positions 3n, 3n+1, 3n+2. Event j starts at 0.5 + 2.5 j s and lasts
  min(file duration, 2 s); the first part of the file is used.
* Kong's `repeat_array` shuffles one array in place and appends that same object every time, so
  the sequence is the *last* permutation repeated. `event_order="faithful"` (default) reproduces
  this; `"shuffled"` appends an independent permutation per repeat (same RNG draws otherwise).
The spec is SNR-independent: every SNR uses the same scene/event assignment.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from twostep_jax import fileio
from data_prep.errors import DataPrepError
from data_prep.layouts import EventCorpus, SceneCorpus
from twostep_jax.data.dataset import NUM_FOLDS
from twostep_jax.data.features import CLIP_SECONDS, AudioError

FOLD_SEED = 1234
MIXTURE_SEED = 1234
MIXTURES_PER_FOLD = 2000
EVENTS_PER_MIXTURE = 3
FIRST_ONSET_S = 0.5
ONSET_SPACING_S = 2.5
MAX_EVENT_S = 2.0
MIN_EVENT_S = 0.1  # shorter files are rejected: too short to carry a recognisable event.
# Scenes are 10 s; up to 0.1 s short is zero-padded, shorter is an error.
MIN_SCENE_S = CLIP_SECONDS - 0.1
EVENT_ORDERS = ("faithful", "shuffled")
SPEC_FORMAT = "twostep-sed mixture spec v1"


def assign_folds(num_rows: int, seed: int = FOLD_SEED) -> np.ndarray:
    """Fold (1..4) of each event CSV row: [num_rows] int."""
    order = np.arange(num_rows)
    np.random.RandomState(seed).shuffle(order)
    folds = np.zeros(num_rows, dtype=np.int64)
    folds[order] = np.arange(num_rows) % NUM_FOLDS + 1
    return folds


def repeat_array(items: np.ndarray, length: int, rng: np.random.RandomState,
                 event_order: str = "faithful") -> np.ndarray:
    """Shuffle-and-repeat `items` to `length` entries, consuming Kong's RNG draws.

    `faithful`: every repeat is the same (final) permutation, Kong's aliasing quirk.
    `shuffled`: each repeat is its own permutation. `items` itself is left untouched.
    """
    if event_order not in EVENT_ORDERS:
        raise ValueError(f"event_order must be one of {EVENT_ORDERS}, got {event_order!r}")
    work = np.array(items, copy=True)
    repeats = length // len(work) + 1
    copies = []
    for _ in range(repeats):
        rng.shuffle(work)
        copies.append(work if event_order == "faithful" else work.copy())
    return np.concatenate(copies)[:length]


@dataclasses.dataclass(frozen=True)
class EventPlacement:
    """An event in a mixture; the first (offset - onset) s of the file, placed at `onset`."""

    event_audio_name: str
    event_label: str
    onset: float
    offset: float


@dataclasses.dataclass(frozen=True)
class Mixture:
    index: int  # k: global mixture number, also its scene's position in the shuffled scene list.
    mixture_name: str  # '{k:05d}.wav'
    fold: int
    scene_audio_name: str
    scene_label: str
    events: tuple[EventPlacement, ...]


@dataclasses.dataclass(frozen=True)
class MixtureSpec:
    """The full recipe output; identical for every SNR. `fingerprint` identifies its content."""

    params: dict
    class_names: tuple[str, ...]
    event_audio_dir: str
    scene_audio_dir: str
    mixtures: tuple[Mixture, ...]

    def _content(self) -> dict:
        return {"params": self.params, "class_names": list(self.class_names),
                "mixtures": [dataclasses.asdict(m) for m in self.mixtures]}

    @property
    def fingerprint(self) -> str:
        """sha256 of params, class names and mixtures (not the folders: moving data is fine)."""
        blob = json.dumps(self._content(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def fold_mixtures(self, fold: int) -> tuple[Mixture, ...]:
        return tuple(m for m in self.mixtures if m.fold == fold)

    def to_json(self) -> str:
        return json.dumps({"format": SPEC_FORMAT, "fingerprint": self.fingerprint,
                           "event_audio_dir": self.event_audio_dir,
                           "scene_audio_dir": self.scene_audio_dir, **self._content()}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> "MixtureSpec":
        d = json.loads(text)
        if d.get("format") != SPEC_FORMAT:
            raise DataPrepError(f"not a mixture spec (format {d.get('format')!r})")
        mixtures = tuple(
            Mixture(**{**m, "events": tuple(EventPlacement(**e) for e in m["events"])})
            for m in d["mixtures"])
        return cls(params=d["params"], class_names=tuple(d["class_names"]),
                   event_audio_dir=d["event_audio_dir"], scene_audio_dir=d["scene_audio_dir"],
                   mixtures=mixtures)

    def save(self, path: str | Path) -> None:
        fileio.write_text(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> "MixtureSpec":
        return cls.from_json(Path(path).read_text(encoding="utf-8"))


def audio_duration(path: Path) -> float:
    """Duration in seconds from the file header; `AudioError` naming the file if unusable."""
    import soundfile

    if not path.is_file():
        raise AudioError(f"{path}: audio file not found")
    try:
        info = soundfile.info(str(path))
    except Exception as e:
        raise AudioError(f"{path}: cannot read audio header ({type(e).__name__}: {e})") from e
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioError(f"{path}: file holds no audio samples")
    return info.frames / info.samplerate


def _probe_all(paths: Sequence[Path], min_seconds: float, what: str,
               probe: Callable[[Path], float]) -> dict[Path, float]:
    """Durations of all `paths`; one error listing every bad file (up to 20), not just the first."""
    durations, problems = {}, []
    for path in paths:
        try:
            d = probe(path)
        except AudioError as e:
            problems.append(str(e))
            continue
        if d < min_seconds:
            problems.append(f"{path}: {what} is {d:.3f} s long, shorter than {min_seconds:g} s")
        durations[path] = d
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise DataPrepError(f"{len(problems)} unusable {what} file(s):\n  {shown}{more}")
    return durations


def check_parameters(mixtures_per_fold: int, event_order: str) -> None:
    """Raises DataPrepError for recipe parameters no corpus can satisfy (checked before any
    work, so a bad flag never leaves a half-made corpus behind)."""
    if mixtures_per_fold < 1:
        raise DataPrepError(f"mixtures_per_fold must be >= 1, got {mixtures_per_fold}")
    if event_order not in EVENT_ORDERS:
        raise DataPrepError(f"event_order must be one of {EVENT_ORDERS}, got {event_order!r}")


def create_mixture_spec(events: EventCorpus, scenes: SceneCorpus, class_names: Sequence[str],
                        mixtures_per_fold: int = MIXTURES_PER_FOLD,
                        event_order: str = "faithful", seed: int = MIXTURE_SEED,
                        probe: Callable[[Path], float] = audio_duration) -> MixtureSpec:
    """Kong's `create_mixture_yaml` over the given corpora (see module doc).

    Probes every event and scene file the spec uses (header only) so that missing, corrupt, empty
    or too-short files are reported up front, all at once, naming each file.
    """
    check_parameters(mixtures_per_fold, event_order)
    total = NUM_FOLDS * mixtures_per_fold
    if len(scenes.clips) < total:
        raise DataPrepError(
            f"{scenes.meta_path}: {len(scenes.clips)} scenes listed, but the recipe needs one "
            f"distinct scene per mixture: {NUM_FOLDS} folds x {mixtures_per_fold} = {total}. "
            f"Lower --mixtures-per-fold to at most {len(scenes.clips) // NUM_FOLDS}.")
    folds = assign_folds(len(events.clips))
    rng = np.random.RandomState(seed)
    scene_order = np.arange(len(scenes.clips))
    rng.shuffle(scene_order)

    positions = EVENTS_PER_MIXTURE * mixtures_per_fold
    fold_sequences = {}
    for fold in range(1, NUM_FOLDS + 1):
        verified = np.array([c.row for c in events.clips
                             if c.manually_verified and folds[c.row] == fold], dtype=np.int64)
        if len(verified) < EVENTS_PER_MIXTURE:
            raise DataPrepError(
                f"{events.csv_path}: fold {fold} has {len(verified)} manually verified clip(s); "
                f"the recipe needs at least {EVENTS_PER_MIXTURE} (events per mixture) in every "
                f"fold "
                f"({sum(c.manually_verified for c in events.clips)} verified of "
                f"{len(events.clips)} rows in total)")
        fold_sequences[fold] = repeat_array(verified, positions, rng, event_order)

    used_rows = sorted({int(r) for seq in fold_sequences.values() for r in seq})
    event_paths = {r: events.audio_path(events.clips[r].fname) for r in used_rows}
    event_durations = _probe_all(list(event_paths.values()), MIN_EVENT_S, "event", probe)
    scene_ids = scene_order[:total]
    _probe_all([scenes.audio_path(scenes.clips[i].name) for i in scene_ids], MIN_SCENE_S,
               "scene", probe)

    mixtures = []
    for fold in range(1, NUM_FOLDS + 1):
        seq = fold_sequences[fold]
        for n in range(mixtures_per_fold):
            k = (fold - 1) * mixtures_per_fold + n
            placed = []
            for j in range(EVENTS_PER_MIXTURE):
                clip = events.clips[int(seq[EVENTS_PER_MIXTURE * n + j])]
                onset = FIRST_ONSET_S + ONSET_SPACING_S * j
                duration = min(event_durations[event_paths[clip.row]], MAX_EVENT_S)
                placed.append(EventPlacement(clip.fname, clip.label, onset, onset + duration))
            scene = scenes.clips[int(scene_ids[k])]
            mixtures.append(Mixture(index=k, mixture_name=f"{k:05d}.wav", fold=fold,
                                    scene_audio_name=scene.name, scene_label=scene.scene_label,
                                    events=tuple(placed)))
    params = {"mixtures_per_fold": mixtures_per_fold, "events_per_mixture": EVENTS_PER_MIXTURE,
              "event_order": event_order, "seed": seed, "fold_seed": FOLD_SEED,
              "num_folds": NUM_FOLDS, "onsets_s": [FIRST_ONSET_S + ONSET_SPACING_S * j
                                                   for j in range(EVENTS_PER_MIXTURE)],
              "max_event_s": MAX_EVENT_S, "event_layout": events.layout}
    return MixtureSpec(params=params, class_names=tuple(class_names),
                       event_audio_dir=str(events.audio_dir.resolve()),
                       scene_audio_dir=str(scenes.audio_dir.resolve()), mixtures=tuple(mixtures))


def write_fold_table(events: EventCorpus, path: str | Path) -> None:
    """Kong's `dcase2018_task2_validate_meta.csv` equivalent: every event row with its fold."""
    folds = assign_folds(len(events.clips))
    lines = ["index,fname,label,manually_verified,fold"]
    lines += [f"{c.row},{c.fname},{c.label},{int(c.manually_verified)},{folds[c.row]}"
              for c in events.clips]
    fileio.write_text(path, "\n".join(lines) + "\n")
