"""The builtin (no-download) corpus, written in the real layouts so the dcase code path reads it.

* Events (`<root>/events`): FSDKaggle2018 Kaggle layout, `train.csv` (`fname,label,
  manually_verified`, rows sorted by fname like the real file) + `audio_train/<8 hex>.wav`,
  44.1 kHz mono 16-bit. 41 procedural classes (`data_prep.synth_events`), ~40% of clips marked
  manually_verified=0 and, like FSD's unverified labels, 35% of those carry a *wrong* label
  (the clip is synthesised from another class) -- so the recipe's verified-only filter matters.
* Scenes (`<root>/scenes`): TAU 2019 development layout, tab-separated `meta.csv` (`filename
  scene_label identifier source_label`) + `audio/<scene>-procedural-<loc>-<seg>-a.wav`, 10 s.
  Written at 32 kHz mono 16-bit (not TAU's 48 kHz stereo 24-bit) to save disk and resampling
  time; the reader handles both, and the tests prove the 48 kHz stereo 24-bit path.
Sizes follow the request: one scene per mixture (4 x mixtures_per_fold) and enough events that
each verified clip is reused ~6.5 times per fold, as with the real FSDKaggle2018 (930 verified
clips per fold for 6000 event slots).

Every file is a pure function of (seed, kind, index), so generation is deterministic whatever
the number of workers, and resumable: files are written atomically into `<root>.partial/`
(skipped if present), and the folder is renamed to `<root>` with `corpus.json` only when done.
"""

from __future__ import annotations

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

CORPUS_VERSION = 1  # bump when synthesis changes: a corpus of another version is regenerated
SEED = 0
EVENT_SR = 44100
SCENE_SR = 32000
SCENE_SECONDS = 10.0
VERIFIED_FRACTION = 0.6
WRONG_LABEL_FRACTION = 0.35  # of unverified clips
REUSE_PER_FOLD = 6.5  # event slots per verified clip in a fold (real data: 6000 / ~930)
MIN_EVENTS_PER_CLASS = 6
JOB_SIZE = 32


def corpus_size(mixtures_per_fold: int) -> tuple[int, int]:
    """(number of event clips, number of scenes) for a recipe of `mixtures_per_fold`."""
    verified_needed = 4 * 3 * mixtures_per_fold / REUSE_PER_FOLD
    per_class = max(MIN_EVENTS_PER_CLASS,
                    math.ceil(verified_needed / VERIFIED_FRACTION / len(synth_events.CLASS_NAMES)))
    return per_class * len(synth_events.CLASS_NAMES), 4 * mixtures_per_fold


def event_fname(seed: int, index: int) -> str:
    """FSD-style 8-hex file name. An odd multiplier makes index -> name a bijection mod 2^32
    (never two clips with one name), and scatters the classes over the sorted CSV."""
    offset = int.from_bytes(hashlib.blake2b(str(seed).encode(), digest_size=4).digest(), "big")
    return f"{(index * 0x9E3779B1 + offset) % 2**32:08x}.wav"


def event_row(seed: int, index: int) -> tuple[str, str, int, str]:
    """(fname, label, manually_verified, class actually synthesised) of event clip `index`."""
    rng = np.random.default_rng([seed, 0, index, 0])
    label = synth_events.CLASS_NAMES[index % len(synth_events.CLASS_NAMES)]
    verified = int(rng.random() < VERIFIED_FRACTION)
    sound = label
    if not verified and rng.random() < WRONG_LABEL_FRACTION:
        sound = synth_events.CLASS_NAMES[(index + 1 + int(rng.integers(len(synth_events.CLASS_NAMES) - 1)))
                            % len(synth_events.CLASS_NAMES)]
    return event_fname(seed, index), label, verified, sound


def scene_row(index: int) -> tuple[str, str, str]:
    """(file name, scene label, identifier) of scene `index`, named like TAU's files."""
    label = synth_scenes.SCENE_LABELS[index % len(synth_scenes.SCENE_LABELS)]
    k = index // len(synth_scenes.SCENE_LABELS)
    location, segment = k // 10, k % 10
    return f"{label}-procedural-{location}-{segment}-a.wav", label, f"procedural-{location}"


def write_event(folder: Path, seed: int, index: int) -> None:
    fname, _, _, sound = event_row(seed, index)
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


def _write_job(job: tuple[str, Path, int, int, int]) -> int:
    kind, folder, seed, start, stop = job
    for i in range(start, stop):
        (write_event if kind == "event" else write_scene)(folder, seed, i)
    return stop - start


def _write_tables(partial: Path, seed: int, n_events: int, n_scenes: int) -> None:
    rows = sorted(event_row(seed, i)[:3] for i in range(n_events))
    fileio.write_text(partial / "events" / "train.csv", "fname,label,manually_verified\n"
                      + "".join(f"{f},{label},{v}\n" for f, label, v in rows))
    lines = ["filename\tscene_label\tidentifier\tsource_label"]
    for i in range(n_scenes):
        name, label, ident = scene_row(i)
        lines.append(f"audio/{name}\t{label}\t{ident}\ta")
    fileio.write_text(partial / "scenes" / "meta.csv", "\n".join(lines) + "\n")


def ensure_corpus(root: str | Path, mixtures_per_fold: int, seed: int = SEED,
                  workers: int | None = None,
                  log: Callable[[str], None] = print) -> tuple[Path, Path]:
    """Generates the corpus under `root` unless an identical one is there; returns
    (events_dir, scenes_dir)."""
    root = Path(root)
    n_events, n_scenes = corpus_size(mixtures_per_fold)
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
    jobs = [("event", partial / "events", seed, s, min(s + JOB_SIZE, n_events))
            for s in range(0, n_events, JOB_SIZE)]
    jobs += [("scene", partial / "scenes", seed, s, min(s + JOB_SIZE, n_scenes))
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
