"""The training loop: data -> pmapped steps -> validation -> plateau LR -> orbax checkpoints.

`train_and_evaluate(config, workdir)` is resumable: re-running it on the same workdir continues
from the last checkpoint and ends with exactly the parameters of an uninterrupted run, because
the data order is a function of (seed, epoch), the step RNG of (seed, step), and checkpoints store
the data position, the plateau scheduler's state and the best metric alongside the train state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from typing import Callable

import jax
import numpy as np

from twostep_jax import backend, fileio
from twostep_jax.config import TrainConfig
from twostep_jax.data import input_pipeline
from twostep_jax.data.dataset import DatasetInfo, load_dataset_info, split_sizes, training_splits
from twostep_jax.model.models import model_from_config
from twostep_jax.progress import format_seconds, progress_bar
from twostep_jax.train.checkpoint import BEST, LATEST, Checkpoints, CorruptCheckpointError, DiskFullError
from twostep_jax.train.metric_writer import MetricWriter
from twostep_jax.train.predict import evaluate_clips
from twostep_jax.train.parallel import parallel_form
from twostep_jax.train.step import (create_train_state, learning_rate_of, learning_rate_schedule,
                                    with_learning_rate)
from twostep_jax.train.workdir import (SUMMARY, WorkdirBusyError, WorkdirMismatchError,
                                      check_or_write_run_config, run_lock)


def _after_nan_advice(ckpts: Checkpoints) -> str:
    if ckpts.latest_step() is None:  # no run to protect: a new config may take the workdir over
        return ("No checkpoint was saved yet: lower the learning rate (--learning-rate) or check "
                "the data, and run again (the new configuration may reuse this workdir).")
    return (f"The last good checkpoint in {ckpts.root} is intact. Lower the learning rate or "
            "check the data, in another --workdir (this one holds checkpoints of this "
            "configuration).")


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN/inf loss; the last good checkpoint is left as it was."""


# What train.py reports as `train.py: error: ...` (exit 2): the user's input or environment,
# never a bug.
USER_ERRORS = (WorkdirMismatchError, WorkdirBusyError, CorruptCheckpointError, DiskFullError,
               NonFiniteLossError)


@dataclasses.dataclass
class Plateau:
    """ReduceLROnPlateau(mode='max', threshold_mode='rel') on the validation micro-AP."""

    best: float = -math.inf
    bad_epochs: int = 0

    def update(self, value: float, lr: float, factor: float, patience: int, threshold: float) -> float:
        improved = value > self.best * (1.0 + threshold) if self.best > 0 else value > self.best
        if improved:
            self.best, self.bad_epochs = value, 0
            return lr
        self.bad_epochs += 1
        if self.bad_epochs > patience:
            self.bad_epochs = 0
            return lr * factor
        return lr


def check_before_training(config: TrainConfig) -> tuple[DatasetInfo, dict[str, int]]:
    """Everything checkable without writing or decoding a clip: the dataset exists and fits the
    model, the global batch splits over local devices x processes, one epoch holds a step.
    Returns (dataset info, clips per split)."""
    info = load_dataset_info(config.data_dir, config.snr)
    info.check_fits(config.model_config())
    input_pipeline.per_device_batch(config.global_batch, jax.local_device_count(),
                                    jax.process_count())
    sizes = split_sizes(info, config)
    if input_pipeline.steps_per_epoch(sizes["train"], config.global_batch) == 0:
        raise ValueError(f"{sizes['train']} training clips are fewer than one global batch "
                         f"({config.global_batch})")
    return info, sizes


def run_header(config: TrainConfig, workdir: str, info: DatasetInfo, sizes: dict[str, int]) -> str:
    """The lines train.py prints before loading data: dataset, splits, devices, preset."""
    val = ("the test fold (released code's selection)" if config.select_on_test_fold
           else f"{config.val_fraction:.0%} of folds {list(config.train_folds)}")
    devices = jax.local_devices()
    return (f"dataset {info.path} (snr {info.snr_db} dB, {info.num_classes} classes, "
            f"fingerprint {info.fingerprint})\n"
            f"clips: train {sizes['train']}, validation {sizes['val']} ({val}), "
            f"test {sizes['test']} (fold {config.test_fold})\n"
            f"devices: {len(devices)} x {devices[0].device_kind} ({devices[0].platform})"
            + (f", process {jax.process_index() + 1}/{jax.process_count()}"
               if jax.process_count() > 1 else "") + "\n"
            f"run: model {config.model}, preset {config.preset}, {config.epochs} epochs, global "
            f"batch {config.global_batch}, "
            f"{f'alpha {config.alpha:g}' if config.model_config().decoder else 'no decoder'}, lr {config.learning_rate:g}"
            f"{' (cosine decay)' if config.lr_schedule == 'cosine' else ''}"
            f"{f', weight average (EMA {config.ema_decay:g})' if config.ema_decay else ''} -> "
            f"{workdir}")


def train_and_evaluate(config: TrainConfig, workdir: str,
                       should_stop: Callable[[int], bool] | None = None) -> dict:
    """Train `config` in `workdir` (resuming if it holds a checkpoint); return the summary.

    Checks what it can before writing anything (`check_before_training`), then holds the
    workdir's lock for the whole run. `should_stop(global_step)` is polled after every step;
    returning True stops the run as a crash would (without a final save) — used by tests to
    interrupt training.
    """
    if config.distributed:
        backend.initialize_distributed()
    info, sizes = check_before_training(config)
    # One lock per run, not per process: the processes of a multi-host run share the workdir,
    # and process 0 holds the lock for all of them.
    lock = run_lock(workdir) if jax.process_index() == 0 else contextlib.nullcontext()
    with lock:
        with Checkpoints(workdir, read_only=True) as existing:
            has_checkpoint = existing.latest_step() is not None
        check_or_write_run_config(config, workdir, has_checkpoint)
        print(run_header(config, workdir, info, sizes), flush=True)
        return _train(config, workdir, should_stop)


def _train(config: TrainConfig, workdir: str, should_stop: Callable[[int], bool] | None) -> dict:
    info, train, val_clips = training_splits(config)
    # Per-mel-bin z-score statistics of the training clips only; saved in every checkpoint's meta.
    stats = input_pipeline.compute_norm_stats(train)

    num_devices = jax.local_device_count()
    form = parallel_form(config.parallel)
    model = model_from_config(config.model_config(), axis_name=form.axis_name)
    steps_per_epoch = input_pipeline.steps_per_epoch(len(train.target), config.global_batch)
    schedule = learning_rate_schedule(config.lr_schedule, config.learning_rate,
                                      steps_per_epoch * config.epochs)
    state = create_train_state(model, jax.random.PRNGKey(config.seed), schedule, config.ema_decay)
    step_rng = jax.random.fold_in(jax.random.PRNGKey(config.seed), 1)

    # One log for the run: process 0 writes it (every process computes the same metrics).
    writer = MetricWriter(workdir, enabled=jax.process_index() == 0)
    ckpts = Checkpoints(workdir, keep=config.keep_checkpoints)
    meta = {"epoch": 0, "step_in_epoch": 0, "plateau": dataclasses.asdict(Plateau()),
            "best_val_micro_ap": None, "best_epoch": None}
    if ckpts.latest_step() is not None:
        state, meta = ckpts.restore_train_state(state)
        if meta.get("dataset_fingerprint") != info.fingerprint:
            raise WorkdirMismatchError(
                f"{workdir} was trained on dataset {meta.get('dataset_fingerprint')}, but "
                f"{config.data_dir} (snr {config.snr}) is {info.fingerprint}")
        ckpts.discard_after(int(state.step))
        print(f"resuming {workdir} from step {int(state.step)} (epoch {meta['epoch']}, "
              f"step {meta['step_in_epoch']} of it)", flush=True)
    # Logs past the restored step (or all of them, on a fresh start after a run that failed
    # before its first checkpoint) are recomputed: each step is logged once.
    writer.truncate_after(int(state.step))
    plateau = Plateau(**meta["plateau"])

    state = form.put_state(state)
    p_train_step = form.make_train_step(model, config.alpha)
    p_eval_step = form.make_eval_step(model)

    def save(epoch: int, step_in_epoch: int, kinds: tuple[str, ...]) -> None:
        meta.update(epoch=epoch, step_in_epoch=step_in_epoch, plateau=dataclasses.asdict(plateau),
                    step=step, config=config.to_dict(), dataset_fingerprint=info.fingerprint,
                    class_names=list(info.class_names), norm_stats=stats.to_dict(), snr=config.snr,
                    test_fold=config.test_fold)
        ckpts.save(step, form.to_global(state), meta, kinds)

    total_steps = steps_per_epoch * config.epochs
    progress = progress_bar("train", total_steps * config.global_batch, unit="clips",
                            initial=int(state.step) * config.global_batch, quiet=not config.progress)
    t_start, clips_done = time.time(), 0
    step = int(state.step)  # host-side step counter: reading state.step would sync every step
    pending: list[tuple[int, dict]] = []

    def flush_train_metrics() -> None:
        # One host transfer per log interval: the loop never blocks on the device otherwise.
        if not pending:
            return
        values = jax.device_get([m for _, m in pending])
        for (step, _), m in zip(pending, values):
            if not all(np.isfinite(v) for v in (m["loss"], m["bce"], m["reconstruction_loss"])):
                raise NonFiniteLossError(
                    f"non-finite loss at step {step} (loss={m['loss']}, bce={m['bce']}, "
                    f"reconstruction={m['reconstruction_loss']}). {_after_nan_advice(ckpts)}")
        for (step, _), m in zip(pending, values):
            writer.write(step, "train", m)
        progress.set_postfix_str(f"loss {float(values[-1]['loss']):.4f}", refresh=False)
        pending.clear()

    epoch, start_in_epoch = int(meta["epoch"]), int(meta["step_in_epoch"])
    try:
        while epoch < config.epochs:
            epoch_start = time.time()
            batches = input_pipeline.train_batches(
                train, stats, config.global_batch, config.seed, epoch, num_devices,
                process_index=jax.process_index(), process_count=jax.process_count(),
                start_step=start_in_epoch)
            for step_in_epoch, batch in enumerate(form.prefetch(batches), start=start_in_epoch):
                state, metrics = p_train_step(state, batch, step_rng)
                if not clips_done:
                    progress.restart_clock()  # the ETA starts after compilation (first call)
                step += 1
                pending.append((step, metrics))
                clips_done += config.global_batch
                progress.update(config.global_batch)
                if step % config.log_every_steps == 0:
                    flush_train_metrics()
                if config.checkpoint_every_steps and step % config.checkpoint_every_steps == 0:
                    flush_train_metrics()
                    save(epoch, step_in_epoch + 1, (LATEST,))
                if should_stop is not None and should_stop(step):
                    ckpts.wait()
                    return {"stopped_at_step": step}
            flush_train_metrics()

            val = evaluate_clips(p_eval_step, state, val_clips, stats, config.global_batch,
                                 list(info.class_names), form)
            lr = float(learning_rate_of(state))  # the rate of the epoch's last step
            new_lr = lr if config.lr_schedule != "plateau" else plateau.update(
                val["micro_ap"], lr, config.plateau_factor, config.plateau_patience, config.plateau_threshold)
            if new_lr != lr:
                state = form.put_state(with_learning_rate(state, new_lr))
            best = meta["best_val_micro_ap"]
            is_best = best is None or val["micro_ap"] > best
            if is_best:
                meta.update(best_val_micro_ap=val["micro_ap"], best_epoch=epoch + 1)
            epoch_time = time.time() - epoch_start
            writer.write(step, "val", {
                "epoch": epoch + 1, "micro_ap": val["micro_ap"], "macro_ap": val["macro_ap"],
                "macro_auc": val["macro_auc"], "learning_rate": lr, "next_learning_rate": new_lr,
                "epoch_seconds": epoch_time,
                "clips_per_second": steps_per_epoch * config.global_batch / max(epoch_time, 1e-9)})
            writer.flush()
            print(f"epoch {epoch + 1}/{config.epochs}: val micro-AP {val['micro_ap']:.4f} "
                  f"macro-AP {val['macro_ap']:.4f} AUC {val['macro_auc']:.4f} (n={len(val_clips.target)})"
                  f" | lr {lr:g}{' -> %g' % new_lr if new_lr != lr else ''}"
                  f"{' | new best' if is_best else ''} | {format_seconds(epoch_time)}", flush=True)
            epoch, start_in_epoch = epoch + 1, 0
            save(epoch, 0, (LATEST, BEST) if is_best else (LATEST,))
    finally:
        progress.close()
        ckpts.close()
        writer.close()

    summary = {
        "workdir": os.path.abspath(workdir),
        "steps": int(state.step),
        "epochs": config.epochs,
        "best_epoch": meta["best_epoch"],
        "best_val_micro_ap": meta["best_val_micro_ap"],
        "train_clips_per_second_this_session": clips_done / max(time.time() - t_start, 1e-9),
        "devices": num_devices,
        "processes": jax.process_count(),
        "parallel": config.parallel,
        "device_kind": jax.devices()[0].device_kind,
        "validation": "test fold (released code's selection)" if config.select_on_test_fold
        else f"{config.val_fraction:.0%} of the training folds",
    }
    fileio.write_json(os.path.join(workdir, SUMMARY), summary)
    print(f"done: best val micro-AP {summary['best_val_micro_ap']:.4f} at epoch {summary['best_epoch']}; "
          f"checkpoints in {ckpts.root}", flush=True)
    return summary
