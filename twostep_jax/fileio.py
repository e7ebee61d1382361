"""Every file the project writes goes through here: atomically, so a reader (or a re-run after a
crash) never sees a half-written file.

Each helper writes to a unique temporary name in the destination folder, then `os.replace`s it
onto the final name (atomic on POSIX within one file system). A failed write removes its
temporary file and leaves the previous version of the destination untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterator

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


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """`obj` as indented JSON with sorted keys (stable bytes for equal content)."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


def save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """Compressed `.npz` of named arrays."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int,
              subtype: str = "PCM_16") -> None:
    """Writes audio ([samples] or [samples, channels]) as wav."""
    import soundfile

    with atomic_path(path, suffix=".wav") as tmp:
        soundfile.write(tmp, audio, sample_rate, subtype=subtype, format="WAV")


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 110) -> Path:
    """A matplotlib `Figure` as PNG (Agg canvas, no pyplot state); returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path = Path(path)
    if fig.canvas is None or not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return path


def describe_os_error(e: OSError) -> str:
    """One line for an OSError the user can act on: `<path>: <reason>` (a read-only or full
    disk, a permission, a path through a file)."""
    where = f"{e.filename}: " if e.filename else ""
    return f"{where}{e.strerror or e}"


def safe_filename(name: str) -> str:
    """A file-name-safe version of a clip/file name, without an audio extension."""
    name = re.sub(r"\.(wav|flac|ogg|mp3)$", "", name, flags=re.IGNORECASE)
    return re.sub(r"[^\w.-]+", "_", name).strip("._") or "clip"
