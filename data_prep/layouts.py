"""Readers for the two real dataset layouts the recipe consumes (ref §5).

* Sound events: FSDKaggle2018 (DCASE 2018 task 2) train set, either the Kaggle competition layout
  (`train.csv` with `fname,label,manually_verified` + `audio_train/`) or the Zenodo layout
  (`FSDKaggle2018.meta/train_post_competition.csv` + `FSDKaggle2018.audio_train/`).
* Scenes: TAU Urban Acoustic Scenes 2019 development: tab-separated `meta.csv`
  (`filename  scene_label  identifier  source_label`, filename = `audio/<name>.wav`) + `audio/`,
  given either as that folder or as its parent holding
  `TAU-urban-acoustic-scenes-2019-development/`.

Only metadata is read here; audio files are probed by `data_prep.recipe` for the clips it uses.
Every error names the file and what was expected versus found.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path
from typing import Sequence

from data_prep.errors import DataPrepError

EVENT_COLUMNS = ("fname", "label", "manually_verified")
SCENE_COLUMNS = ("filename", "scene_label")
TAU_FOLDER = "TAU-urban-acoustic-scenes-2019-development"

# (layout name, csv relative path, audio folder relative path), checked in this order.
EVENT_LAYOUTS = (
    ("kaggle", "train.csv", "audio_train"),
    ("zenodo", "FSDKaggle2018.meta/train_post_competition.csv", "FSDKaggle2018.audio_train"),
)


@dataclasses.dataclass(frozen=True)
class EventClip:
    """One row of the event CSV. `row` is its 0-based data-row index (fold order, ref §2.2)."""

    fname: str
    label: str
    manually_verified: bool
    row: int


@dataclasses.dataclass(frozen=True)
class EventCorpus:
    layout: str  # "kaggle" | "zenodo"
    root: Path
    csv_path: Path
    audio_dir: Path
    clips: tuple[EventClip, ...]

    def audio_path(self, fname: str) -> Path:
        return self.audio_dir / fname


@dataclasses.dataclass(frozen=True)
class SceneClip:
    """One row of TAU `meta.csv`; `name` is the file name without the `audio/` prefix."""

    name: str
    scene_label: str


@dataclasses.dataclass(frozen=True)
class SceneCorpus:
    root: Path
    meta_path: Path
    audio_dir: Path
    clips: tuple[SceneClip, ...]

    def audio_path(self, name: str) -> Path:
        return self.audio_dir / name


def describe_folder(path: Path, limit: int = 12) -> str:
    """A short listing of what a folder holds, for error messages."""
    if not path.exists():
        return f"{path} does not exist"
    if not path.is_dir():
        return f"{path} is not a folder"
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())
    if not names:
        return f"{path} is empty"
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return f"{path} holds: " + ", ".join(names[:limit]) + more


def read_table(path: Path, delimiter: str, required: Sequence[str]) -> list[tuple[int, dict]]:
    """Reads a CSV/TSV with a header; returns [(line_number, row dict)] for the data rows.

    Raises `DataPrepError` naming the file if it is missing, empty, lacks a required column (the
    message shows the header found, and hints at a wrong delimiter), or has ragged rows.
    """
    if not path.is_file():
        raise DataPrepError(f"{path}: file not found")
    with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: tolerate a BOM.
        lines = list(csv.reader(f, delimiter=delimiter))
    if not lines or not any(cell.strip() for cell in lines[0]):
        raise DataPrepError(
            f"{path}: file is empty; expected a header with columns {list(required)}")
    header = [cell.strip() for cell in lines[0]]
    missing = [c for c in required if c not in header]
    if missing:
        sep = "tab" if delimiter == "\t" else repr(delimiter)
        hint = ""
        other = "," if delimiter == "\t" else "\t"
        if len(header) == 1 and other in header[0]:
            hint = f" (the header has no {sep} separators: this file must be {sep}-separated)"
        raise DataPrepError(
            f"{path}: missing column(s) {missing}; expected {sep}-separated columns including "
            f"{list(required)}, found header {header}{hint}")
    rows = []
    for i, cells in enumerate(lines[1:], start=2):
        if not any(cell.strip() for cell in cells):
            continue  # blank line
        if len(cells) != len(header):
            raise DataPrepError(
                f"{path}, line {i}: {len(cells)} fields but the header has {len(header)} "
                f"({header})")
        rows.append((i, {k: v.strip() for k, v in zip(header, cells)}))
    return rows


def _parse_verified(value: str, path: Path, line: int) -> bool:
    lowered = value.lower()
    if lowered in ("1", "true"):
        return True
    if lowered in ("0", "false"):
        return False
    raise DataPrepError(f"{path}, line {line}: manually_verified must be 0 or 1, found {value!r}")


def detect_event_layout(events_dir: Path) -> tuple[str, Path, Path]:
    """Returns (layout, csv_path, audio_dir) of an FSDKaggle2018 folder, or raises listing both."""
    events_dir = Path(events_dir)
    if not events_dir.is_dir():
        raise DataPrepError(f"events folder {events_dir} does not exist or is not a folder")
    for layout, csv_rel, audio_rel in EVENT_LAYOUTS:
        csv_path, audio_dir = events_dir / csv_rel, events_dir / audio_rel
        if csv_path.is_file() and audio_dir.is_dir():
            return layout, csv_path, audio_dir
    expected = " or ".join(f"{layout} layout ({csv_rel} + {audio_rel}/)"
                           for layout, csv_rel, audio_rel in EVENT_LAYOUTS)
    raise DataPrepError(
        f"{events_dir} is not an FSDKaggle2018 folder: expected the {expected}; "
        f"found: {describe_folder(events_dir)}")


def read_event_corpus(events_dir: str | Path, class_names: Sequence[str]) -> EventCorpus:
    """Reads the FSDKaggle2018 train metadata in either layout, validating every row.

    Checks: required columns, manually_verified in {0,1}, label in `class_names`, unique fnames.
    """
    layout, csv_path, audio_dir = detect_event_layout(Path(events_dir))
    known = set(class_names)
    clips, seen = [], {}
    for line, row in read_table(csv_path, ",", EVENT_COLUMNS):
        fname, label = row["fname"], row["label"]
        if label not in known:
            raise DataPrepError(
                f"{csv_path}, line {line}: label {label!r} of {fname!r} is not in the class list "
                f"({len(known)} classes: {', '.join(list(class_names)[:6])}, ...)")
        if not fname:
            raise DataPrepError(f"{csv_path}, line {line}: empty fname")
        if fname in seen:
            raise DataPrepError(
                f"{csv_path}, line {line}: fname {fname!r} already listed on line {seen[fname]}")
        seen[fname] = line
        verified = _parse_verified(row["manually_verified"], csv_path, line)
        clips.append(EventClip(fname=fname, label=label, manually_verified=verified,
                               row=len(clips)))
    if not clips:
        raise DataPrepError(f"{csv_path}: no data rows")
    return EventCorpus(layout=layout, root=Path(events_dir), csv_path=csv_path, audio_dir=audio_dir,
                       clips=tuple(clips))


def detect_scene_folder(scenes_dir: Path) -> Path:
    """The folder holding TAU `meta.csv` + `audio/`: `scenes_dir` itself or its TAU subfolder."""
    scenes_dir = Path(scenes_dir)
    if not scenes_dir.is_dir():
        raise DataPrepError(f"scenes folder {scenes_dir} does not exist or is not a folder")
    for root in (scenes_dir, scenes_dir / TAU_FOLDER):
        if (root / "meta.csv").is_file() and (root / "audio").is_dir():
            return root
    raise DataPrepError(
        f"{scenes_dir} is not a TAU Urban Acoustic Scenes 2019 development folder: expected "
        f"meta.csv (tab-separated) + audio/ in it or in {TAU_FOLDER}/; "
        f"found: {describe_folder(scenes_dir)}")


def read_scene_corpus(scenes_dir: str | Path) -> SceneCorpus:
    """Reads TAU 2019 `meta.csv` (tab-separated; filename must be `audio/<name>`)."""
    root = detect_scene_folder(Path(scenes_dir))
    meta_path = root / "meta.csv"
    clips, seen = [], {}
    for line, row in read_table(meta_path, "\t", SCENE_COLUMNS):
        filename = row["filename"]
        if not filename.startswith("audio/") or len(filename) <= len("audio/"):
            raise DataPrepError(
                f"{meta_path}, line {line}: filename must look like 'audio/<name>.wav', "
                f"found {filename!r}")
        if filename in seen:
            raise DataPrepError(
                f"{meta_path}, line {line}: {filename!r} already listed on line {seen[filename]}")
        seen[filename] = line
        clips.append(SceneClip(name=filename[len("audio/"):], scene_label=row["scene_label"]))
    if not clips:
        raise DataPrepError(f"{meta_path}: no data rows")
    return SceneCorpus(root=root, meta_path=meta_path, audio_dir=root / "audio", clips=tuple(clips))
