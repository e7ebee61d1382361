#!/usr/bin/env python
"""Train 2APAE or a baseline with data parallelism over all devices (--parallel pmap|sharded).

    python train.py --data DATA_DIR --snr 20 --test-fold 1 --model 2apae --preset paper \
        --workdir RUN_DIR [--alpha 0.001] [--epochs 50] [--global-batch 24] [--dtype bfloat16]

Multi-host: the same command on every host plus --coordinator-address HOST0:PORT
--num-processes N --process-id I (or the TWOSTEP_* environment variables; see README).

Re-running the same command resumes from the last checkpoint. A sweep over models x alpha x SNR
x folds (Tables IV and V) runs with `--sweep paper_table4|quick --runs RUNS_DIR`; `--only snr=0`
(repeatable) runs part of one.
"""

import argparse
import sys


def main(argv=None) -> int:
    from twostep_jax.config import MODEL_NAMES, PRESETS

    parser = argparse.ArgumentParser(prog="train.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="dataset directory written by `python -m data_prep`")
    parser.add_argument("--workdir", help="run directory (checkpoints, logs, config)")
    parser.add_argument("--model", default="2apae", choices=MODEL_NAMES)
    parser.add_argument("--preset", default="paper", choices=PRESETS)
    parser.add_argument("--sweep", help="run a grid of experiments instead of one run (see twostep_jax/sweep.py)")
    parser.add_argument("--runs", help="with --sweep: directory holding one workdir per run")
    parser.add_argument("--only", action="append", metavar="KEY=V1[,V2...]",
                        help="with --sweep: run only the cells whose KEY (model, alpha, snr, fold, seed) "
                             "is one of the values; repeat to combine (e.g. --only snr=0 --only model=gap,gmp)")
    from twostep_jax import backend
    from twostep_jax.flags import add_config_flags, config_from_args

    backend.add_eigen_conv_flag(parser)
    backend.add_distributed_flags(parser)
    add_config_flags(parser)
    args = parser.parse_args(argv)
    backend.configure(eigen_convolutions=args.xla_cpu_eigen_conv)
    if backend.distributed_requested(args):  # before anything queries the devices
        backend.initialize_distributed(args.coordinator_address, args.num_processes, args.process_id)
    if not args.data:
        parser.error("--data DATA_DIR is required (build one with `python -m data_prep --source builtin --out DATA_DIR`)")
    if args.sweep and not args.runs:
        parser.error("--sweep needs --runs RUNS_DIR")
    if args.only and not args.sweep:
        parser.error("--only selects cells of a --sweep")
    if not args.sweep and not args.workdir:
        parser.error("--workdir RUN_DIR is required")
    from twostep_jax.train.loop import USER_ERRORS, train_and_evaluate

    try:
        if args.sweep:
            from twostep_jax.sweep import run_sweep

            run_sweep(args.sweep, args.data, args.runs, only=args.only)
            return 0
        train_and_evaluate(config_from_args(args), args.workdir)
    except (*USER_ERRORS, FileNotFoundError, ValueError) as e:
        print(f"train.py: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a read-only or full workdir, a permission problem: the environment's
        from twostep_jax.fileio import describe_os_error

        print(f"train.py: error: {describe_os_error(e)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
