"""Orchestration: source corpora -> mixture spec -> parallel features -> one TFDS dataset per SNR.

DATA_DIR layout:
  mixture_spec.json, folds.csv      the recipe output (Kong's mixture.yaml / fold CSV), for users
  sources/{events,scenes}/          builtin source only: the generated corpus (real layouts)
  work/spec-<fingerprint>/          intermediate features (chunks); removed after a build
  tfds/sed_mixtures/snr_<snr>/<version>/   the datasets (TFRecord shards + dataset_info.json)
  audio/snr_<snr>/<mixture>.wav     with --save-audio: mixtures for listening (32 kHz, 16 bit)

Safety: one run per DATA_DIR at a time (lock file); every file is written atomically; a dataset
is built in a staging folder and renamed into place only when complete, so an interrupted run
never leaves a dataset that looks complete, and re-running resumes from the finished chunks.
A finished dataset with the same recipe is kept (rebuilt only with `overwrite=True`); one with a
different recipe is an error unless `overwrite=True`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Callable, Iterator, Sequence

from data_prep import builtin_corpus, layouts, parallel, recipe, render, synth_events
from data_prep.errors import DataPrepError
from twostep_jax.progress import format_seconds, progress_bar
from twostep_jax.data import features
from twostep_jax.data.dataset import dataset_version_dir, staging_dir

SPEC_FILE = "mixture_spec.json"
FEATURE_PARAMS = {"sample_rate": features.SAMPLE_RATE, "window": features.WINDOW,
                  "hop": features.HOP, "n_mels": features.N_MELS, "fmin": features.FMIN,
                  "fmax": features.FMAX, "frames": features.FRAMES, "window_fn": "hamming_sym",
                  "spectrogram": "magnitude", "mel": "slaney", "log": "ln(x+1e-8)"}


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclasses.dataclass
class PrepareResult:
    datasets: dict[int, Path]  # snr -> dataset version folder
    built: list[int]
    reused: list[int]
    mixtures_rendered: int
    render_seconds: float
    total_seconds: float


LOCK_FILE = ".prepare.lock"
# Recipe-record keys derived from the source data, not requested: left out of re-run comparisons.
DERIVED_RECIPE_KEYS = ("spec_fingerprint", "classes_without_verified_clips")


@contextlib.contextmanager
def _exclusive(out_dir: Path) -> Iterator[None]:
    """Holds DATA_DIR's lock; a failed run that leaves nothing but the lock removes it again
    (and the folder, if this run made it), so a typo'd command leaves no empty folder behind."""
    made = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    lock_path = out_dir / LOCK_FILE
    with open(lock_path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataPrepError(f"{out_dir}: another data_prep run is using this folder") from None
        try:
            yield
        except BaseException:
            if [p.name for p in out_dir.iterdir()] == [LOCK_FILE]:
                lock_path.unlink()
                if made:
                    out_dir.rmdir()
            raise


def _stored_recipe(version_dir: Path) -> dict | None:
    path = version_dir / "metadata.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text()).get("recipe")


def _snrs_to_build(out_dir: Path, snrs: Sequence[int], request: dict, overwrite: bool,
                   log: Callable[[str], None]) -> list[int]:
    """SNRs without a finished dataset (all of them with `overwrite`); checks recipe agreement."""
    todo = []
    for snr in snrs:
        final = dataset_version_dir(out_dir, snr)
        if not (final / "dataset_info.json").is_file() or overwrite:
            todo.append(snr)
            continue
        stored = dict(_stored_recipe(final) or {})
        for key in DERIVED_RECIPE_KEYS:
            stored.pop(key, None)
        wanted = {**request, "snr_db": snr}
        if stored != wanted:
            diff = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
            details = "; ".join(f"{k}: built {stored.get(k)!r}, requested {wanted.get(k)!r}"
                                for k in diff)
            raise DataPrepError(
                f"{final} is already built with a different recipe ({details}). "
                f"Use --overwrite to rebuild it, or choose another --out folder.")
        log(f"snr {snr}: finished dataset found at {final}; not rebuilt (use --overwrite)")
    return todo


def _render(spec: recipe.MixtureSpec, work_dir: Path, snrs: Sequence[int],
            audio_dir: Path | None, workers: int, log: Callable[[str], None]) -> int:
    """Worker stage; returns the number of mixtures rendered (finished chunks are skipped)."""
    jobs = []
    for chunk in render.plan_chunks(spec):
        missing = render.missing_snrs(work_dir, chunk, snrs, spec, audio_dir)
        if missing:
            jobs.append((chunk, tuple(missing)))
    total = sum(len(chunk) for chunk, _ in jobs)
    if not jobs:
        log("features: all chunks already computed")
        return 0
    skipped = len(spec.mixtures) - total
    log(f"features: {total} mixtures x SNR {list(snrs)} on {workers} worker(s)"
        + (f" ({skipped} already done)" if skipped else ""))
    with progress_bar("features", total, unit="mixtures") as progress:
        for n in parallel.run_jobs(render.render_job, jobs, workers, initializer=render.init_worker,
                                   initargs=(spec, work_dir, audio_dir), preload=["data_prep.render"]):
            progress.update(n)
    render.release_worker()  # a serial run keeps its state in this process: drop it
    return total


def _build(job: tuple[Path, Path, int, tuple[str, ...], dict]) -> tuple[int, Path, float]:
    """Builder stage for one SNR: TFRecords in a staging folder, then renamed into place.

    job = (out_dir, work_dir, snr, class_names, recipe_params); returns (snr, folder, seconds).
    """
    out_dir, work_dir, snr, class_names, recipe_params = job
    from data_prep import builder
    from twostep_jax.data.dataset import hide_gpus_from_tf

    hide_gpus_from_tf()
    final = dataset_version_dir(out_dir, snr)
    staging = staging_dir(out_dir, snr)
    shutil.rmtree(staging, ignore_errors=True)
    start = time.monotonic()
    built = builder.build_snr_dataset(work_dir, staging, snr, class_names, recipe_params)
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():
        trash = staging.with_name(staging.name + ".old")
        shutil.rmtree(trash, ignore_errors=True)
        os.replace(final, trash)
        os.replace(built, final)
        shutil.rmtree(trash)
    else:
        os.replace(built, final)
    shutil.rmtree(staging, ignore_errors=True)
    return snr, final, time.monotonic() - start


def prepare_datasets(sources: Callable[[], tuple[Path, Path]], out_dir: str | Path,
                     snrs: Sequence[int], *, class_names: Sequence[str], source: dict,
                     mixtures_per_fold: int = recipe.MIXTURES_PER_FOLD,
                     event_order: str = "faithful", workers: int | None = None,
                     overwrite: bool = False, save_audio: bool = False, keep_work: bool = False,
                     log: Callable[[str], None] = _log) -> PrepareResult:
    """Runs the recipe on (events_dir, scenes_dir) = `sources()` and builds one dataset per SNR.

    `sources` is called only if something needs building (the builtin source generates its
    corpus there). `source` describes where the data comes from; it is stored in each dataset's
    recipe record together with the recipe parameters and compared on re-runs.
    """
    t0 = time.monotonic()
    out_dir = Path(out_dir).resolve()
    snrs = sorted({int(s) for s in snrs})
    if not snrs:
        raise DataPrepError("no SNR requested")
    recipe.check_parameters(mixtures_per_fold, event_order)
    if workers is not None and workers < 1:
        raise DataPrepError(f"workers must be >= 1, got {workers}")
    workers = workers or len(os.sched_getaffinity(0))
    request = {**source, "mixtures_per_fold": mixtures_per_fold, "event_order": event_order,
               "seed": recipe.MIXTURE_SEED, "fold_seed": recipe.FOLD_SEED,
               "events_per_mixture": recipe.EVENTS_PER_MIXTURE, "features": FEATURE_PARAMS,
               "class_names": list(class_names)}
    with _exclusive(out_dir):
        todo = _snrs_to_build(out_dir, snrs, request, overwrite, log)
        datasets = {s: dataset_version_dir(out_dir, s) for s in snrs}
        if not todo:
            return PrepareResult(datasets, [], snrs, 0, 0.0, time.monotonic() - t0)
        events_dir, scenes_dir = sources()
        events = layouts.read_event_corpus(events_dir, class_names)
        scenes = layouts.read_scene_corpus(scenes_dir)
        log(f"events: {events.csv_path} ({events.layout} layout, {len(events.clips)} clips, "
            f"{sum(c.manually_verified for c in events.clips)} verified); "
            f"scenes: {scenes.meta_path} ({len(scenes.clips)} clips)")
        empty = classes_without_verified_clips(events, class_names)
        if empty:
            log(f"warning: {len(empty)} of {len(class_names)} classes have no verified clips in "
                f"{events.csv_path}: {', '.join(empty)}. No mixture contains them, so the model "
                "never learns them and they are excluded from macro averages (recorded in each "
                "dataset's metadata.json as classes_without_verified_clips)")
        spec = recipe.create_mixture_spec(events, scenes, class_names, mixtures_per_fold,
                                          event_order)
        spec.save(out_dir / SPEC_FILE)
        recipe.write_fold_table(events, out_dir / "folds.csv")
        work_root = out_dir / "work"
        work_dir = work_root / f"spec-{spec.fingerprint[:16]}"
        if work_root.is_dir():  # chunks of another spec can never be reused: free the disk.
            for stale in work_root.iterdir():
                if stale != work_dir:
                    shutil.rmtree(stale, ignore_errors=True)
        spec.save(work_dir / SPEC_FILE)
        audio_dir = out_dir / "audio" if save_audio else None
        r0 = time.monotonic()
        rendered = _render(spec, work_dir, todo, audio_dir, workers, log)
        render_seconds = time.monotonic() - r0
        # One TFRecord writer per SNR, in parallel: ZLIB-compressing the log-mels dominates.
        jobs = [(out_dir, work_dir, snr, tuple(class_names),
                 {**request, "snr_db": snr, "spec_fingerprint": spec.fingerprint,
                  "classes_without_verified_clips": empty})
                for snr in todo]
        log(f"writing TFRecord datasets for SNR {todo} under {out_dir / 'tfds'}")
        for snr, final, seconds in parallel.run_jobs(_build, jobs, workers):
            log(f"snr {snr}: wrote {final} in {format_seconds(seconds)}")
            if not keep_work:
                shutil.rmtree(work_dir / f"snr_{snr}", ignore_errors=True)
        if not keep_work:
            shutil.rmtree(work_dir, ignore_errors=True)
            with contextlib.suppress(OSError):
                work_root.rmdir()
    total = time.monotonic() - t0
    reused = [s for s in snrs if s not in todo]
    log(f"done: built SNR {todo}" + (f", kept SNR {reused}" if reused else "")
        + f" in {format_seconds(total)}"
        + (f"; features {rendered / render_seconds:.1f} mixtures/s" if rendered else ""))
    return PrepareResult(datasets, todo, reused, rendered, render_seconds, total)


def classes_without_verified_clips(events: layouts.EventCorpus,
                                   class_names: Sequence[str]) -> list[str]:
    """Classes of `class_names` with no manually verified clip (the recipe uses only those)."""
    verified = {c.label for c in events.clips if c.manually_verified}
    return [c for c in class_names if c not in verified]


def prepare_dcase(events_dir: str | Path, scenes_dir: str | Path, out_dir: str | Path,
                  snrs: Sequence[int], **options) -> PrepareResult:
    """The paper's data: FSDKaggle2018 events + TAU 2019 development scenes from disk."""
    events_dir, scenes_dir = Path(events_dir).resolve(), Path(scenes_dir).resolve()
    source = {"source": "dcase", "events_dir": str(events_dir), "scenes_dir": str(scenes_dir)}
    return prepare_datasets(lambda: (events_dir, scenes_dir), out_dir, snrs,
                            class_names=features.FSD_CLASS_NAMES, source=source, **options)


def prepare_builtin(out_dir: str | Path, snrs: Sequence[int], seed: int = builtin_corpus.SEED,
                    mixtures_per_fold: int = recipe.MIXTURES_PER_FOLD,
                    min_verified_per_fold: int = builtin_corpus.MIN_VERIFIED_PER_FOLD,
                    **options) -> PrepareResult:
    """No download: generate the procedural corpus under DATA_DIR/sources, then the same recipe.

    `min_verified_per_fold`: the built-in source's size rule (`builtin_corpus.corpus_size`),
    recorded with the dataset's source description."""
    out_dir = Path(out_dir).resolve()
    n_events, _ = builtin_corpus.corpus_size(mixtures_per_fold, min_verified_per_fold, seed)
    counts = builtin_corpus.verified_per_class_per_fold(n_events, seed)
    source = {"source": "builtin", "builtin_seed": seed, "builtin_version": builtin_corpus.CORPUS_VERSION,
              "min_verified_per_fold": min_verified_per_fold, "event_clips": n_events,
              "verified_per_class_per_fold": {"min": int(counts.min()), "mean": float(counts.mean())}}
    log = options.get("log", _log)

    def sources() -> tuple[Path, Path]:
        return builtin_corpus.ensure_corpus(
            out_dir / "sources", mixtures_per_fold=mixtures_per_fold, seed=seed,
            workers=options.get("workers"), log=log, min_verified_per_fold=min_verified_per_fold)

    return prepare_datasets(sources, out_dir, snrs, class_names=synth_events.CLASS_NAMES,
                            source=source, mixtures_per_fold=mixtures_per_fold, **options)
