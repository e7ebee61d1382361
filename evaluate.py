#!/usr/bin/env python
"""Evaluate trained runs: metrics, tables, attention figures, tagging of any audio file.

    python evaluate.py --workdir RUN_DIR [--split test|val|train] [--step N] [--data DATA_DIR]
        clip metrics (micro-P, macro-P, AUC, per class) + localisation (segment/event F1, ER,
        PSDS1) of the best checkpoint (or --step N); writes RUN_DIR/eval_<split>.{json,md} and
        eval_<split>_predictions.npz (clip probabilities, targets, clip names)
    python evaluate.py --workdir RUN_DIR --figure CLIP_NAME [...] | --figure-random N [--seed S]
        the paper's Fig. 3 with ground-truth events -> RUN_DIR/figures/<split>_<clip>.png
    python evaluate.py --workdir RUN_DIR --audio FILE.wav [FILE2 ...] [--top 5] [--threshold 0.5]
        [--figure-out DIR]   tags of any audio (any rate, channels, length) and when they occur
    python evaluate.py --table RUNS_DIR [--preset cpu_small]
        Tables IV and V (mean ± std over folds) -> RUNS_DIR/table_iv.{md,csv,png}, table_v.{md,csv}

Only params, BatchNorm statistics and metadata are restored (no optimizer), on whatever devices
are present. Exit status: 0 ok, 2 bad input (missing run, mismatching checkpoint/data, every
audio file unusable).
"""

import argparse
import os
import sys


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", help="run directory written by train.py")
    p.add_argument("--table", metavar="RUNS_DIR", help="aggregate the runs under RUNS_DIR into Tables IV/V")
    p.add_argument("--preset", help="with --table: the preset to tabulate when runs of several exist")
    p.add_argument("--split", default="test", choices=("test", "val", "train"))
    p.add_argument("--step", type=int, help="evaluate this checkpoint step instead of the best one")
    p.add_argument("--data", help="dataset directory (default: the one the run was trained on)")
    p.add_argument("--snr", type=int, help="evaluate on this SNR's dataset (default: the run's)")
    p.add_argument("--allow-other-data", action="store_true",
                   help="evaluate on a dataset other than the run's own (different fingerprint)")
    p.add_argument("--batch", type=int, help="evaluation batch size (default: the run's global batch)")
    p.add_argument("--threshold", type=float, default=0.5, help="frame activity threshold (localisation, tags)")
    from twostep_jax.backend import add_eigen_conv_flag

    add_eigen_conv_flag(p)
    figs = p.add_argument_group("figures (paper Fig. 3)")
    figs.add_argument("--figure", nargs="+", metavar="CLIP_NAME", default=[], help="mixture name(s) of the split")
    figs.add_argument("--figure-random", type=int, default=0, metavar="N", help="N random clips of the split")
    figs.add_argument("--seed", type=int, default=0, help="with --figure-random")
    tag = p.add_argument_group("tagging audio files")
    tag.add_argument("--audio", nargs="+", metavar="FILE", help="audio files to tag")
    tag.add_argument("--top", type=int, default=5, help="number of tags to print per file")
    tag.add_argument("--figure-out", metavar="DIR", help="also draw Fig. 3 for each 10 s window into DIR")
    return p


def _evaluate(args) -> int:
    from twostep_jax.restore import load_run
    from twostep_jax.run_eval import evaluate_split, write_report

    run = load_run(args.workdir, step=args.step)
    print(f"evaluating {run.describe()} on the {args.split} split", file=sys.stderr, flush=True)
    report, predictions = evaluate_split(run, args.split, args.data, args.snr, args.allow_other_data,
                                         args.threshold, args.batch)
    print(write_report(args.workdir, report, predictions))
    return 0


def _figures(args) -> int:
    from twostep_jax.clip_figures import draw_clip_figures, select_clips
    from twostep_jax.restore import load_run
    from twostep_jax.run_eval import load_split

    run = load_run(args.workdir, step=args.step)
    _, clips = load_split(run, args.split, args.data, args.snr, args.allow_other_data)
    indices = select_clips(clips, args.figure, args.figure_random, args.seed)
    for path in draw_clip_figures(run, clips, indices, os.path.join(args.workdir, "figures"), f"{args.split}_"):
        print(path)
    return 0


def _tag(args) -> int:
    import json

    from twostep_jax.features import AudioError
    from twostep_jax.restore import load_run
    from twostep_jax.tagging import format_result, result_json, tag_file

    run = load_run(args.workdir, step=args.step)
    failed, results = 0, []
    for path in args.audio:
        try:
            result = tag_file(run, path, args.threshold, args.figure_out)
        except AudioError as e:
            failed += 1
            print(f"skipped: {e}", file=sys.stderr, flush=True)
            continue
        results.append(result_json(result, run.class_names))
        print(format_result(result, run.class_names, args.top), flush=True)
    if args.figure_out and results:
        from twostep_jax.run_eval import write_text_atomic

        write_text_atomic(os.path.join(args.figure_out, "tags.json"), json.dumps(results, indent=2) + "\n")
    if failed == len(args.audio):
        print(f"error: none of the {failed} file(s) could be tagged", file=sys.stderr)
        return 2
    return 0


def _table(args) -> int:
    from twostep_jax.tables import write_tables

    print(write_tables(args.table, args.table, args.preset))
    return 0


def _quiet_logs() -> None:
    # TensorFlow's C++ info lines and orbax's "read_only=True, setting ..." warnings (expected
    # for an evaluation-only restore) would bury the results.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.ERROR)


def main(argv=None) -> int:
    _quiet_logs()
    parser = _parser()
    args = parser.parse_args(argv)
    from twostep_jax import backend

    backend.configure(eigen_convolutions=args.xla_cpu_eigen_conv)
    if args.table:
        mode = _table
    elif not args.workdir:
        parser.error("--workdir RUN_DIR is required (or --table RUNS_DIR)")
    elif args.audio:
        mode = _tag
    elif args.figure or args.figure_random:
        mode = _figures
    else:
        mode = _evaluate
    if args.top < 1 or not 0.0 <= args.threshold < 1.0 or args.figure_random < 0 or (args.batch or 1) < 1:
        parser.error("--top and --batch must be >= 1, --threshold in [0, 1), --figure-random >= 0")
    if mode in (_evaluate, _figures):
        # Datasets are read with TensorFlow: keep it off any GPU (JAX owns the accelerators).
        from twostep_jax.input_pipeline import hide_gpus_from_tf

        hide_gpus_from_tf()
    from twostep_jax.restore import CheckpointMismatchError

    try:
        return mode(args)
    except (CheckpointMismatchError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
