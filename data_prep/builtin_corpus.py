"""The builtin (no-download) corpus, written in the real layouts so the dcase code path reads it.

* Events (`<root>/events`): FSDKaggle2018 Kaggle layout, `train.csv` (`fname,label,
  manually_verified`, rows sorted by fname like the real file) + `audio_train/<8 hex>.wav`,
  44.1 kHz mono 16-bit. 41 procedural classes (`data_prep.synth_events`), 40% of clips marked
  manually_verified=0 and, like FSD's unverified labels, 35% of those carry a *wrong* label
  (the clip is synthesised from another class) -- so the recipe's verified-only filter matters.
  Labels and flags are balanced within the recipe's folds (`event_rows`).
* Scenes (`<root>/scenes`): TAU 2019 development layout, tab-separated `meta.csv` (`filename
  scene_label identifier source_label`) + `audio/<scene>-procedural-<loc>-<seg>-a.wav`, 10 s.
  Written at 32 kHz mono 16-bit (not TAU's 48 kHz stereo 24-bit) to save disk and resampling
  time; the reader handles both, and the tests prove the 48 kHz stereo 24-bit path.
Sizes follow the request: one scene per mixture (4 x mixtures_per_fold), and events by a size
rule of the built-in source's own (`corpus_size`):
  * full size (>= 2000 mixtures per fold, the paper's 8000): enough events that each verified
    clip is reused ~6.5 times per fold, as with the real FSDKaggle2018 (930 verified clips per
    fold for 6000 event slots);
  * smaller builds: at least `min_verified_per_fold` (default 25) distinct verified recordings
    of every class in every fold. Copying the real data's reuse ratio at small sizes starves them
    (150 mixtures per fold would hold ~2 verified recordings per class per fold, so the test
    fold's recordings are nearly all unseen and the model cannot generalise); with the floor a
    small build reuses each clip about once or less. `min_verified_per_fold=0` keeps the ratio.
The counts are exact, not expected: the generator's labels, verification flags and the recipe's
fold assignment are all deterministic, so the rule adds clips until every class x fold has the
floor.

Every file is a pure function of (seed, kind, index), so generation is deterministic whatever
the number of workers, and resumable: files are written atomically into `<root>.partial/`
(skipped if present), and the folder is renamed to `<root>` with `corpus.json` only when done.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import json
import math
import os
import shutil
from pathlib import Path
from typing import Callable

import numpy as np

from data_prep import parallel, synth_events, synth_scenes
from twostep_jax import fileio
from twostep_jax.progress import progress_bar

CORPUS_VERSION = 2  # bump when synthesis changes: a corpus of another version is regenerated
SEED = 0
EVENT_SR = 44100
SCENE_SR = 32000
SCENE_SECONDS = 10.0
VERIFIED_FRACTION = 0.6
WRONG_LABEL_FRACTION = 0.35  # of unverified clips
REUSE_PER_FOLD = 6.5  # event slots per verified clip in a fold (real data: 6000 / ~930)
MIN_EVENTS_PER_CLASS = 6
MIN_VERIFIED_PER_FOLD = 25  # distinct verified recordings per class per fold below full size
FULL_SIZE_MIXTURES = 2000  # mixtures per fold of the paper's recipe (recipe.MIXTURES_PER_FOLD)
JOB_SIZE = 32


def verified_per_class_per_fold(n_events: int, seed: int = SEED) -> np.ndarray:
    """[classes, folds] distinct verified event recordings of a corpus of `n_events` clips, in
    the recipe's folds."""
    from data_prep.recipe import NUM_FOLDS

    counts = np.zeros((len(synth_events.CLASS_NAMES), NUM_FOLDS), np.int64)
    index = {name: k for k, name in enumerate(synth_events.CLASS_NAMES)}
    for (_, label, verified, _), fold in zip(event_rows(seed, n_events), _index_folds(seed, n_events)):
        if verified:
            counts[index[label], fold - 1] += 1
    return counts


def corpus_size(mixtures_per_fold: int, min_verified_per_fold: int = MIN_VERIFIED_PER_FOLD,
                seed: int = SEED) -> tuple[int, int]:
    """(number of event clips, number of scenes) for a recipe of `mixtures_per_fold` (the size
    rule in the module docstring)."""
    n_classes = len(synth_events.CLASS_NAMES)
    verified_needed = 4 * 3 * mixtures_per_fold / REUSE_PER_FOLD
    per_class = max(MIN_EVENTS_PER_CLASS, math.ceil(verified_needed / VERIFIED_FRACTION / n_classes))
    if min_verified_per_fold < 0:
        raise ValueError(f"min_verified_per_fold must be >= 0, got {min_verified_per_fold}")
    if mixtures_per_fold < FULL_SIZE_MIXTURES and min_verified_per_fold:
        # Labels and verification are balanced per fold (`event_rows`), so the expected size
        # nearly always holds the floor already; grow until it does.
        per_class = max(per_class, math.ceil(4 * min_verified_per_fold / VERIFIED_FRACTION))
        while verified_per_class_per_fold(per_class * n_classes, seed).min() < min_verified_per_fold:
            per_class += 1
    return per_class * n_classes, 4 * mixtures_per_fold


def event_fname(seed: int, index: int) -> str:
    """FSD-style 8-hex file name. An odd multiplier makes index -> name a bijection mod 2^32
    (never two clips with one name), and scatters the classes over the sorted CSV."""
    offset = int.from_bytes(hashlib.blake2b(str(seed).encode(), digest_size=4).digest(), "big")
    return f"{(index * 0x9E3779B1 + offset) % 2**32:08x}.wav"


@functools.lru_cache(maxsize=8)
def _index_folds(seed: int, n_events: int) -> np.ndarray:
    """[n_events] the recipe's fold of each clip index (folds are drawn on CSV rows, which are
    sorted by file name)."""
    from data_prep.recipe import assign_folds

    names = [event_fname(seed, i) for i in range(n_events)]
    csv_row = np.empty(n_events, np.int64)
    csv_row[np.argsort(names, kind="stable")] = np.arange(n_events)
    return assign_folds(n_events)[csv_row]


@functools.lru_cache(maxsize=8)
def event_rows(seed: int, n_events: int) -> tuple[tuple[str, str, int, str], ...]:
    """(fname, label, manually_verified, class actually synthesised) of every event clip.

    Labels and verification are balanced within each of the recipe's folds: the j-th clip of a
    fold (in index order) has class j mod K and is verified when (j div K) mod 5 < 3 (60 %), so
    every class has the same number of verified recordings in every fold (+-1). Like FSD's
    unverified labels, 35 % of the unverified clips are synthesised from another class.
    """
    folds = _index_folds(seed, n_events)
    n_classes = len(synth_events.CLASS_NAMES)
    seen: collections.Counter = collections.Counter()
    rows = []
    for index in range(n_events):
        fold = int(folds[index])
        j = seen[fold]
        seen[fold] += 1
        label = synth_events.CLASS_NAMES[j % n_classes]
        verified = int((j // n_classes) % 5 < round(5 * VERIFIED_FRACTION))
        sound = label
        rng = np.random.default_rng([seed, 0, index, 0])
        if not verified and rng.random() < WRONG_LABEL_FRACTION:
            sound = synth_events.CLASS_NAMES[(j + 1 + int(rng.integers(n_classes - 1))) % n_classes]
        rows.append((event_fname(seed, index), label, verified, sound))
    return tuple(rows)


def scene_row(index: int) -> tuple[str, str, str]:
    """(file name, scene label, identifier) of scene `index`, named like TAU's files."""
    label = synth_scenes.SCENE_LABELS[index % len(synth_scenes.SCENE_LABELS)]
    k = index // len(synth_scenes.SCENE_LABELS)
    location, segment = k // 10, k % 10
    return f"{label}-procedural-{location}-{segment}-a.wav", label, f"procedural-{location}"


def write_event(folder: Path, seed: int, index: int, n_events: int) -> None:
    fname, _, _, sound = event_rows(seed, n_events)[index]
    path = folder / "audio_train" / fname
    if not path.is_file():
        audio = synth_events.synthesize_event(sound, np.random.default_rng([seed, 0, index, 1]),
                                              EVENT_SR)
        fileio.write_wav(path, audio.astype(np.float32), EVENT_SR, "PCM_16")


def write_scene(folder: Path, seed: int, index: int) -> None:
    name, label, _ = scene_row(index)
    path = folder / "audio" / name
    if not path.is_file():
        audio = synth_scenes.synthesize_scene(label, np.random.default_rng([seed, 1, index]),
                                              SCENE_SR, SCENE_SECONDS)
        fileio.write_wav(path, audio.astype(np.float32), SCENE_SR, "PCM_16")


def _write_job(job: tuple[str, Path, int, int, int, int]) -> int:
    kind, folder, seed, start, stop, n_events = job
    for i in range(start, stop):
        if kind == "event":
            write_event(folder, seed, i, n_events)
        else:
            write_scene(folder, seed, i)
    return stop - start


def _write_tables(partial: Path, seed: int, n_events: int, n_scenes: int) -> None:
    rows = sorted(row[:3] for row in event_rows(seed, n_events))
    fileio.write_text(partial / "events" / "train.csv", "fname,label,manually_verified\n"
                      + "".join(f"{f},{label},{v}\n" for f, label, v in rows))
    lines = ["filename\tscene_label\tidentifier\tsource_label"]
    for i in range(n_scenes):
        name, label, ident = scene_row(i)
        lines.append(f"audio/{name}\t{label}\t{ident}\ta")
    fileio.write_text(partial / "scenes" / "meta.csv", "\n".join(lines) + "\n")


def ensure_corpus(root: str | Path, mixtures_per_fold: int, seed: int = SEED,
                  workers: int | None = None, log: Callable[[str], None] = print,
                  min_verified_per_fold: int = MIN_VERIFIED_PER_FOLD) -> tuple[Path, Path]:
    """Generates the corpus under `root` unless an identical one is there; returns
    (events_dir, scenes_dir)."""
    root = Path(root)
    n_events, n_scenes = corpus_size(mixtures_per_fold, min_verified_per_fold, seed)
    params = {"version": CORPUS_VERSION, "seed": seed, "events": n_events, "scenes": n_scenes,
              "event_sr": EVENT_SR, "scene_sr": SCENE_SR}
    marker = root / "corpus.json"
    if marker.is_file() and json.loads(marker.read_text()) == params:
        return root / "events", root / "scenes"
    partial = root.with_name(root.name + ".partial")
    partial_marker = partial / "params.json"
    if not (partial_marker.is_file() and json.loads(partial_marker.read_text()) == params):
        shutil.rmtree(partial, ignore_errors=True)  # other parameters: nothing reusable
        fileio.write_text(partial_marker, json.dumps(params))
    jobs = [("event", partial / "events", seed, s, min(s + JOB_SIZE, n_events), n_events)
            for s in range(0, n_events, JOB_SIZE)]
    jobs += [("scene", partial / "scenes", seed, s, min(s + JOB_SIZE, n_scenes), n_events)
             for s in range(0, n_scenes, JOB_SIZE)]
    workers = max(1, workers or len(os.sched_getaffinity(0)))
    log(f"builtin corpus: generating {n_events} event clips and {n_scenes} scenes "
        f"(seed {seed}) in {partial}")
    with progress_bar("corpus", n_events + n_scenes, unit="files") as progress:
        for n in parallel.run_jobs(_write_job, jobs, workers, preload=["data_prep.builtin_corpus"]):
            progress.update(n)
    _write_tables(partial, seed, n_events, n_scenes)
    fileio.write_text(partial / "corpus.json", json.dumps(params))
    shutil.rmtree(root, ignore_errors=True)
    os.replace(partial, root)
    (root / "params.json").unlink()
    return root / "events", root / "scenes"
