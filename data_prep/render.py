"""Worker stage: mixtures of a spec -> log-mel features per SNR, written as atomic chunk files.

A chunk is a run of consecutive mixtures of one fold. For each mixture the scene and its events
are loaded and resampled once, the 0 dB tracks are built once, and every requested SNR is mixed
and featurised from them. Each chunk's features for one SNR go to
`<work_dir>/snr_<snr>/<start>-<stop>.npy` ([n, 311, 64] float32) via an atomic rename, so a
killed run leaves only whole chunk files and a re-run computes just the missing ones.

Event files are reused a lot (the faithful order repeats each verified clip ~6 times per fold),
so each worker keeps decoded event segments in a byte-bounded LRU cache.
"""

from __future__ import annotations

import collections
import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np

from data_prep import mixing
from twostep_jax import fileio
from data_prep.recipe import MAX_EVENT_S, Mixture, MixtureSpec
from twostep_jax.data import features

CHUNK_SIZE = 50
EVENT_CACHE_BYTES = 512 * 2**20


@dataclasses.dataclass(frozen=True)
class Chunk:
    start: int  # first mixture index (inclusive)
    stop: int  # last mixture index (exclusive)
    fold: int

    @property
    def name(self) -> str:
        return f"{self.start:05d}-{self.stop:05d}"

    def __len__(self) -> int:
        return self.stop - self.start


def plan_chunks(spec: MixtureSpec, chunk_size: int = CHUNK_SIZE) -> list[Chunk]:
    """Consecutive runs of at most `chunk_size` mixtures, never spanning two folds."""
    chunks, start = [], 0
    mixtures = spec.mixtures
    while start < len(mixtures):
        fold = mixtures[start].fold
        stop = start
        while stop < len(mixtures) and stop - start < chunk_size and mixtures[stop].fold == fold:
            stop += 1
        chunks.append(Chunk(start, stop, fold))
        start = stop
    return chunks


def chunk_file(work_dir: Path, snr_db: int, chunk: Chunk) -> Path:
    return Path(work_dir) / f"snr_{snr_db}" / f"{chunk.name}.npy"


def missing_snrs(work_dir: Path, chunk: Chunk, snrs: Sequence[int], spec: MixtureSpec,
                 audio_dir: Path | None = None) -> list[int]:
    """The SNRs whose chunk file (or, with `audio_dir`, any of whose wavs) does not exist yet."""
    def done(snr: int) -> bool:
        if not chunk_file(work_dir, snr, chunk).is_file():
            return False
        return audio_dir is None or all(
            (Path(audio_dir) / f"snr_{snr}" / m.mixture_name).is_file()
            for m in spec.mixtures[chunk.start:chunk.stop])
    return [s for s in snrs if not done(s)]


class EventCache:
    """Unit-RMS first <= 2 s of each event file (32 kHz), least-recently-used, bounded in bytes."""

    def __init__(self, max_bytes: int = EVENT_CACHE_BYTES):
        self.max_bytes = max_bytes
        self._items: collections.OrderedDict[str, np.ndarray] = collections.OrderedDict()
        self._bytes = 0
        self.loads = 0  # files decoded so far (for tests and tuning)

    def segment(self, path: Path) -> np.ndarray:
        key = str(path)
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        self.loads += 1
        audio = features.load_audio(path)
        seg = mixing.unit_rms_segment(
            audio, int(round(MAX_EVENT_S * features.SAMPLE_RATE)), key).astype(np.float32)
        self._items[key] = seg
        self._bytes += seg.nbytes
        while self._bytes > self.max_bytes and len(self._items) > 1:
            _, old = self._items.popitem(last=False)
            self._bytes -= old.nbytes
        return seg


def mixture_tracks(spec: MixtureSpec, mixture: Mixture,
                   cache: EventCache) -> tuple[np.ndarray, np.ndarray]:
    """(0 dB event track, RMS-1 scene track) of one mixture: each [320000] float64."""
    scene_path = Path(spec.scene_audio_dir) / mixture.scene_audio_name
    scene = mixing.scene_track(features.load_audio(scene_path), str(scene_path))
    segments = []
    for ev in mixture.events:
        seg = cache.segment(Path(spec.event_audio_dir) / ev.event_audio_name)
        segments.append((seg[:mixing.event_samples(ev.onset, ev.offset)], ev.onset))
    return mixing.unit_event_track(segments), scene


def render_chunk(spec: MixtureSpec, chunk: Chunk, snrs: Sequence[int], work_dir: Path,
                 audio_dir: Path | None, cache: EventCache) -> int:
    """Computes and writes the chunk's features for `snrs` (and wavs if `audio_dir`)."""
    logmels = {s: np.empty((len(chunk), features.FRAMES, features.N_MELS), np.float32)
               for s in snrs}
    for i, mixture in enumerate(spec.mixtures[chunk.start:chunk.stop]):
        unit_events, scene = mixture_tracks(spec, mixture, cache)
        for snr in snrs:
            mixed = mixing.mix_at_snr(unit_events, scene, snr)
            logmels[snr][i] = features.logmel(mixed.mixture)
            if audio_dir is not None:
                wav = Path(audio_dir) / f"snr_{snr}" / mixture.mixture_name
                if not wav.is_file():
                    fileio.write_wav(wav, mixed.mixture.astype(np.float32), features.SAMPLE_RATE)
    for snr in snrs:
        fileio.save_npy(chunk_file(work_dir, snr, chunk), logmels[snr])
    return len(chunk)


# Per-process state of the worker stage (set once by `init_worker`, so jobs stay tiny to pickle).
_WORKER: dict = {}


def init_worker(spec: MixtureSpec, work_dir: Path, audio_dir: Path | None) -> None:
    _WORKER.update(spec=spec, work_dir=work_dir, audio_dir=audio_dir, cache=EventCache())


def release_worker() -> None:
    _WORKER.clear()


def render_job(job: tuple[Chunk, tuple[int, ...]]) -> int:
    """Worker-stage job: one chunk for some SNRs; returns the number of mixtures."""
    chunk, snrs = job
    return render_chunk(_WORKER["spec"], chunk, snrs, _WORKER["work_dir"], _WORKER["audio_dir"],
                        _WORKER["cache"])
