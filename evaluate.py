#!/usr/bin/env python
"""Evaluate trained runs: metrics, attention figures, tagging of any audio file, tables.

    python evaluate.py run --workdir RUN_DIR [--split test|val|train] [--step N] [--data DATA_DIR]
        clip metrics (micro-P, macro-P, AUC, per class) + localisation (segment/event F1, ER,
        PSDS1) of the best checkpoint (or --step N); writes RUN_DIR/eval_<split>.{json,md} and
        eval_<split>_predictions.npz (clip probabilities, targets, clip names)
    python evaluate.py figure --workdir RUN_DIR CLIP_NAME [...] | --random N [--seed S]
        the paper's Fig. 3 with ground-truth events -> RUN_DIR/figures/<split>_<clip>.png
    python evaluate.py tag --workdir RUN_DIR FILE.wav [FILE2 ...] [--top 5] [--threshold 0.5]
        [--figure-out DIR]   tags of any audio (any rate, channels, length) and when they occur
    python evaluate.py table RUNS_DIR [--preset cpu_small]
        Tables IV and V (mean ± std over folds) -> RUNS_DIR/table_iv.{md,csv,png}, table_v.{md,csv}

The flag forms of earlier versions still work: `--workdir RUN_DIR` alone is `run`,
`--figure NAME` / `--figure-random N` is `figure`, `--audio FILE` is `tag`, `--table DIR` is
`table`.

Only params, BatchNorm statistics and metadata are restored (no optimizer), on whatever devices
are present. Exit status: 0 ok, 2 bad input (missing run, mismatching checkpoint/data, every
audio file unusable).
"""

import argparse
import json
import os
import sys

COMMANDS = ("run", "figure", "tag", "table")


def _run_args(p: argparse.ArgumentParser, data: bool = True) -> None:
    p.add_argument("--workdir", required=True, help="run directory written by train.py")
    p.add_argument("--step", type=int, help="use this checkpoint step instead of the best one")
    if data:
        p.add_argument("--split", default="test", choices=("test", "val", "train"))
        p.add_argument("--data", help="dataset directory (default: the one the run was trained on)")
        p.add_argument("--snr", type=int, help="evaluate on this SNR's dataset (default: the run's)")
        p.add_argument("--allow-other-data", action="store_true",
                       help="evaluate on a dataset other than the run's own (different fingerprint)")


def _parser() -> argparse.ArgumentParser:
    from twostep_jax.backend import add_eigen_conv_flag

    p = argparse.ArgumentParser(prog="evaluate.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="{run,figure,tag,table}")
    run = sub.add_parser("run", help="metrics of a run on a split")
    _run_args(run)
    run.add_argument("--batch", type=int, help="evaluation batch size (default: the run's global batch)")
    run.add_argument("--threshold", type=float, default=None,
                     help="frame activity threshold for localisation (default: the one chosen on "
                          "the validation split, stored in WORKDIR/postprocessing.json)")
    run.add_argument("--reselect", action="store_true",
                     help="choose the localisation read-out, median filter and threshold on the "
                          "validation split again")
    fig = sub.add_parser("figure", help="the paper's Fig. 3 for clips of a split")
    _run_args(fig)
    fig.add_argument("clips", nargs="*", metavar="CLIP_NAME", help="mixture name(s) of the split")
    fig.add_argument("--random", type=int, default=0, metavar="N", help="N random clips of the split")
    fig.add_argument("--seed", type=int, default=0, help="with --random")
    tag = sub.add_parser("tag", help="tag audio files")
    _run_args(tag, data=False)
    tag.add_argument("files", nargs="+", metavar="FILE", help="audio files to tag")
    tag.add_argument("--top", type=int, default=5, help="number of tags to print per file")
    tag.add_argument("--threshold", type=float, default=0.5, help="clip and frame activity threshold")
    tag.add_argument("--figure-out", metavar="DIR", help="also draw Fig. 3 for each 10 s window into DIR")
    table = sub.add_parser("table", help="Tables IV/V of the runs under a folder")
    table.add_argument("runs_dir", metavar="RUNS_DIR")
    table.add_argument("--preset", help="the preset to tabulate when runs of several exist")
    for q in (run, fig, tag, table):
        add_eigen_conv_flag(q)
    return p


def translate_legacy(argv: list[str]) -> list[str]:
    """The earlier flag forms (`--table DIR`, `--audio F ...`, `--figure N ...`, `--figure-random
    N`, plain `--workdir`) as subcommand arguments; new-style argv is returned unchanged."""
    if not argv or argv[0] in COMMANDS or argv[0] in ("-h", "--help"):
        return argv
    out, command, positional = [], "run", []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--table":
            command, positional = "table", [argv[i + 1]] if i + 1 < len(argv) else []
            i += 2
            continue
        if a in ("--audio", "--figure"):
            command = "tag" if a == "--audio" else "figure"
            i += 1
            while i < len(argv) and not argv[i].startswith("--"):
                positional.append(argv[i])
                i += 1
            continue
        if a == "--figure-random":
            command = "figure"
            out.append("--random")
        else:
            out.append(a)
        i += 1
    return [command] + positional + out


def _evaluate(args) -> int:
    from twostep_jax.evaluation.report import write_report
    from twostep_jax.evaluation.restore import load_run
    from twostep_jax.evaluation.score import choose_postprocessing, evaluate_split

    run = load_run(args.workdir, step=args.step)
    print(f"evaluating {run.describe()} on the {args.split} split", file=sys.stderr, flush=True)
    postprocessing = choose_postprocessing(run, args.batch, reselect=args.reselect)
    report, predictions = evaluate_split(run, args.split, args.data, args.snr, args.allow_other_data,
                                         args.threshold, args.batch, postprocessing)
    print(write_report(args.workdir, report, predictions))
    return 0


def _figures(args) -> int:
    from twostep_jax.evaluation.clip_figures import draw_clip_figures, select_clips
    from twostep_jax.evaluation.restore import load_run
    from twostep_jax.evaluation.score import choose_postprocessing, load_split

    run = load_run(args.workdir, step=args.step)
    _, clips = load_split(run, args.split, args.data, args.snr, args.allow_other_data)
    indices = select_clips(clips, args.clips, args.random, args.seed)
    postprocessing = choose_postprocessing(run)
    for path in draw_clip_figures(run, clips, indices, os.path.join(args.workdir, "figures"), f"{args.split}_",
                                  postprocessing):
        print(path)
    return 0


def _tag(args) -> int:
    from twostep_jax import fileio
    from twostep_jax.data.features import AudioError
    from twostep_jax.evaluation.restore import load_run
    from twostep_jax.evaluation.tagging import format_result, result_json, tag_file

    run = load_run(args.workdir, step=args.step)
    failed, results = 0, []
    for path in args.files:
        try:
            result = tag_file(run, path, args.threshold, args.figure_out)
        except AudioError as e:
            failed += 1
            print(f"skipped: {e}", file=sys.stderr, flush=True)
            continue
        results.append(result_json(result, run.class_names))
        print(format_result(result, run.class_names, args.top), flush=True)
    if args.figure_out and results:
        fileio.write_text(os.path.join(args.figure_out, "tags.json"), json.dumps(results, indent=2) + "\n")
    if failed == len(args.files):
        print(f"evaluate.py: error: none of the {failed} file(s) could be tagged", file=sys.stderr)
        return 2
    return 0


def _table(args) -> int:
    from twostep_jax.viz.tables import write_tables

    print(write_tables(args.runs_dir, args.runs_dir, args.preset))
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
    args = parser.parse_args(translate_legacy(list(sys.argv[1:] if argv is None else argv)))
    from twostep_jax import backend

    backend.configure(eigen_convolutions=args.xla_cpu_eigen_conv)
    mode = {"run": _evaluate, "figure": _figures, "tag": _tag, "table": _table}[args.command]
    if args.command == "figure" and not args.clips and not args.random:
        parser.error("figure: name clips (CLIP_NAME ...) or pass --random N")
    if getattr(args, "top", 1) < 1 or getattr(args, "random", 0) < 0 or (getattr(args, "batch", None) or 1) < 1:
        parser.error("--top and --batch must be >= 1, --random >= 0")
    threshold = getattr(args, "threshold", None)
    if threshold is not None and not 0.0 <= threshold < 1.0:
        parser.error("--threshold must be in [0, 1)")
    if mode in (_evaluate, _figures):
        # Datasets are read with TensorFlow: keep it off any GPU (JAX owns the accelerators).
        from twostep_jax.data.dataset import hide_gpus_from_tf

        hide_gpus_from_tf()
    from twostep_jax.evaluation.restore import CheckpointMismatchError

    try:
        return mode(args)
    except (CheckpointMismatchError, FileNotFoundError, ValueError) as e:
        print(f"evaluate.py: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # an unwritable workdir or output folder: the environment's
        from twostep_jax.fileio import describe_os_error

        print(f"evaluate.py: error: {describe_os_error(e)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
