"""Atomic file writes: a reader (or a re-run after a crash) never sees a half-written file.

Each helper writes to a unique temporary name in the destination folder, then `os.replace`s it
onto the final name (atomic on POSIX within one file system).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yields a temporary path next to `path`; renames it onto `path` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int,
              subtype: str = "PCM_16") -> None:
    """Writes audio ([samples] or [samples, channels]) as wav, atomically."""
    import soundfile

    with atomic_path(path, suffix=".wav") as tmp:
        soundfile.write(tmp, audio, sample_rate, subtype=subtype, format="WAV")
