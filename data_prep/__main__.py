"""Command line: `python -m data_prep --source {builtin,dcase} --out DATA_DIR [...]`.

Only parses flags and calls `data_prep.prepare`; see that module for what is written where.
"""

from __future__ import annotations

import argparse
import os
import sys

from data_prep import builtin_corpus, recipe
from data_prep.errors import DataPrepError
from twostep_jax.data.features import AudioError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m data_prep",
        description="Build the 2APAE mixture datasets (one TFDS dataset per SNR, folds 1-4).",
        epilog="examples:\n"
               "  python -m data_prep --source builtin --out data/builtin\n"
               "  python -m data_prep --source dcase --events-dir FSDKaggle2018 "
               "--scenes-dir TAU-urban-acoustic-scenes-2019-development --out data/dcase",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", choices=("builtin", "dcase"), default="builtin",
                   help="builtin: generate a procedural corpus (no download); dcase: read "
                        "FSDKaggle2018 + TAU Urban Acoustic Scenes 2019 development from disk")
    p.add_argument("--out", required=True, help="DATA_DIR to write (datasets under DATA_DIR/tfds)")
    p.add_argument("--events-dir", help="dcase: FSDKaggle2018 folder (Kaggle or Zenodo layout)")
    p.add_argument("--scenes-dir", help="dcase: TAU 2019 development folder (meta.csv + audio/)")
    p.add_argument("--snr", type=int, nargs="+", default=[0, 10, 20],
                   help="SNRs in dB, one dataset each (default: 0 10 20)")
    p.add_argument("--mixtures-per-fold", type=int, default=recipe.MIXTURES_PER_FOLD,
                   help="mixtures per fold (default 2000, the paper's 8000 in total)")
    p.add_argument("--event-order", choices=recipe.EVENT_ORDERS, default="faithful",
                   help="faithful: the released recipe's repeated permutation (default); "
                        "shuffled: a fresh permutation per repeat")
    p.add_argument("--seed", type=int, default=None,
                   help=f"builtin: corpus synthesis seed (default {builtin_corpus.SEED})")
    p.add_argument("--min-verified-per-fold", type=int, default=None,
                   help=f"builtin: below full size, at least this many distinct verified event "
                        f"recordings per class per fold (default "
                        f"{builtin_corpus.MIN_VERIFIED_PER_FOLD}; 0: the real data's reuse ratio "
                        f"at every size)")
    p.add_argument("--save-audio", action="store_true",
                   help="also write each mixture as DATA_DIR/audio/snr_<snr>/<name>.wav")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--overwrite", action="store_true",
                   help="rebuild datasets that are already finished")
    p.add_argument("--keep-work", action="store_true",
                   help="keep the intermediate feature chunks under DATA_DIR/work")
    args = p.parse_args(argv)
    if args.mixtures_per_fold < 1:
        p.error(f"--mixtures-per-fold must be >= 1, got {args.mixtures_per_fold}")
    if args.workers is not None and args.workers < 1:
        p.error(f"--workers must be >= 1, got {args.workers}")
    if args.source == "dcase":
        if not args.events_dir or not args.scenes_dir:
            p.error("--source dcase needs --events-dir and --scenes-dir")
        if args.seed is not None:
            p.error("--seed applies to --source builtin (the recipe's own seed is fixed: 1234)")
        if args.min_verified_per_fold is not None:
            p.error("--min-verified-per-fold applies to --source builtin")
    elif args.events_dir or args.scenes_dir:
        p.error("--events-dir/--scenes-dir apply to --source dcase")
    elif args.min_verified_per_fold is not None and args.min_verified_per_fold < 0:
        p.error("--min-verified-per-fold must be >= 0")
    return args


def missing_prep_dependencies() -> list[str]:
    """The `[prep]` extra's packages that are not installed (data_prep writes TFRecords with
    tensorflow-datasets; training and evaluation hosts do not need them)."""
    import importlib.util

    return [m for m in ("tensorflow", "tensorflow_datasets") if importlib.util.find_spec(m) is None]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    missing = missing_prep_dependencies()
    if missing:  # before generating anything: the last stage would fail on it
        print(f"data_prep: error: {', '.join(missing)} not installed; data_prep needs the [prep] "
              f"extra: pip install -e \".[prep]\"", file=sys.stderr)
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TF's C++ banner lines are noise here
    from data_prep import prepare  # after parsing: --help stays fast

    options = dict(mixtures_per_fold=args.mixtures_per_fold, event_order=args.event_order,
                   workers=args.workers, overwrite=args.overwrite, save_audio=args.save_audio,
                   keep_work=args.keep_work)
    try:
        if args.source == "dcase":
            result = prepare.prepare_dcase(args.events_dir, args.scenes_dir, args.out, args.snr,
                                           **options)
        else:
            seed = builtin_corpus.SEED if args.seed is None else args.seed
            floor = (builtin_corpus.MIN_VERIFIED_PER_FOLD if args.min_verified_per_fold is None
                     else args.min_verified_per_fold)
            result = prepare.prepare_builtin(args.out, args.snr, seed=seed,
                                             min_verified_per_fold=floor, **options)
    except (DataPrepError, AudioError) as e:
        print(f"data_prep: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # an unwritable --out, a full disk: the environment's, not a bug
        from twostep_jax.fileio import describe_os_error

        print(f"data_prep: error: {describe_os_error(e)}", file=sys.stderr)
        return 2
    for snr, path in result.datasets.items():
        print(f"snr {snr}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
