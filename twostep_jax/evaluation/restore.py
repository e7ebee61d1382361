"""Loading a trained run for inference: params + BatchNorm statistics + stored metadata only.

    run = load_run("runs/2apae", step=None)            # best checkpoint; --step N: that step
    out = run.forward(normalize(logmel, run.norm_stats))  # all model outputs, numpy

A run trained with `--ema-decay` is evaluated with its moving-average weights (the `ema`
checkpoint item), the weights its validation selected. No optimizer is built and no optimizer
state is read (orbax restores only the items asked
for). Arrays are restored onto the first local device with an explicit sharding, so a run
trained on 8 devices restores on 1 CPU (and vice versa); the pmapped eval step broadcasts them.

Compatibility is checked *before* reading any array: the model the run directory asks for
(`run_config.json`, rebuilt with today's code) must have the same parameter structure
(`ModelConfig.structure()`) as the model stored in the checkpoint, and evaluation data must have
the checkpoint's classes and dataset fingerprint (`check_data`).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import numpy as np

from twostep_jax.config import ModelConfig, TrainConfig, alpha_text
from twostep_jax.data.input_pipeline import NormStats
from twostep_jax.model.models import SEDModel, abstract_variables, model_from_config
from twostep_jax.train.checkpoint import BEST, LATEST, Checkpoints
from twostep_jax.train.workdir import read_run_config


class CheckpointMismatchError(ValueError):
    """A checkpoint that does not fit the requested model or evaluation data."""


@dataclasses.dataclass
class LoadedRun:
    """A trained model ready for inference (single-device jitted `forward`)."""

    workdir: str
    config: TrainConfig  # the run's training configuration (from run_config.json)
    model: SEDModel  # axis_name=None: inference never syncs BatchNorm statistics
    variables: dict  # {"params", "batch_stats"}
    meta: dict  # the checkpoint's JSON metadata (epoch, class_names, norm_stats, ...)
    step: int
    kind: str  # "best" or "latest": which checkpoint manager it came from
    weights: str = "raw"  # "ema": the moving average of the weights (runs with --ema-decay)

    @property
    def model_config(self) -> ModelConfig:
        return self.model.config

    @property
    def class_names(self) -> list[str]:
        return list(self.meta["class_names"])

    @property
    def norm_stats(self) -> NormStats:
        """The training clips' per-mel-bin z-score statistics, as used in training."""
        return NormStats.from_dict(self.meta["norm_stats"])

    @property
    def dataset_fingerprint(self) -> str | None:
        return self.meta.get("dataset_fingerprint")

    def describe(self) -> str:
        c = self.config
        alpha = alpha_text(c.alpha, self.model.config.decoder)
        return (f"{c.model} ({c.preset}, {alpha}) snr {c.snr} test fold {c.test_fold}: "
                f"{self.kind} checkpoint, step {self.step}, epoch {self.meta.get('epoch')}"
                + (f", moving-average weights (decay {c.ema_decay:g})" if self.weights == "ema" else ""))

    @functools.cached_property
    def _jit_forward(self):
        return jax.jit(lambda variables, x: self.model.apply(variables, x, train=False))

    def forward(self, logmel: np.ndarray) -> dict[str, np.ndarray]:
        """Every model output for normalised log-mels `[B, T, F]` -> dict of `[B, ...]` numpy.

        Runs on one device (figures and tagging use a handful of clips; `train.predict.predict`
        is the batched multi-device path). Compiles once per distinct B.
        """
        logmel = np.asarray(logmel, np.float32)
        out = self._jit_forward(self.variables, logmel)
        return jax.tree.map(np.asarray, jax.device_get(out))


def _structure_diff(a: ModelConfig, b: ModelConfig) -> list[str]:
    sa, sb = a.structure(), b.structure()
    return [f"{k}: {sa.get(k)!r} vs {sb.get(k)!r}" for k in sorted(set(sa) | set(sb)) if sa.get(k) != sb.get(k)]


def _choose_checkpoint(ckpts: Checkpoints, step: int | None) -> tuple[str, int]:
    """(kind, step): the best checkpoint by default, else the manager that holds `step`."""
    if step is None:
        best = ckpts.latest_step(BEST)
        if best is None:
            raise FileNotFoundError(f"no best checkpoint under {ckpts.root}: train first (train.py), "
                                    "or pass --step N for a checkpoint of the latest manager")
        return BEST, best
    for kind in (LATEST, BEST):  # `--step N` means the latest manager; best as a fallback
        if step in ckpts.all_steps(kind):
            return kind, step
    raise FileNotFoundError(
        f"no checkpoint at step {step} under {ckpts.root} (latest: {sorted(ckpts.all_steps(LATEST))}, "
        f"best: {sorted(ckpts.all_steps(BEST))})")


def load_run(workdir: str, step: int | None = None, expected_model: ModelConfig | None = None) -> LoadedRun:
    """Restores a run's params/batch_stats/meta from its best checkpoint (or `step`).

    `expected_model`, if given, must have the checkpoint's parameter structure too (a caller
    that needs a particular model, e.g. a sweep cell). Raises `CheckpointMismatchError` naming
    the differing fields, `FileNotFoundError` when there is no such run or checkpoint.
    """
    config = read_run_config(workdir)
    requested = config.model_config()
    with Checkpoints(workdir, read_only=True) as ckpts:
        kind, step = _choose_checkpoint(ckpts, step)
        meta = ckpts.restore_meta(step, kind)
        stored_dict = (meta.get("config") or {}).get("model_config")
        if stored_dict is None:
            raise CheckpointMismatchError(f"{workdir}: {kind} checkpoint {step} has no stored model config")
        stored = ModelConfig.from_dict(stored_dict)
        for what, want in (("the run's run_config.json", requested), ("the requested model", expected_model)):
            diff = [] if want is None else _structure_diff(stored, want)
            if diff:
                raise CheckpointMismatchError(
                    f"{workdir}: {kind} checkpoint {step} holds model {stored.name!r} whose structure "
                    f"differs from {what} ({want.name!r}): {'; '.join(diff)} (checkpoint vs requested). "
                    "Evaluate with the code/config it was trained with, or retrain.")
        missing = [k for k in ("class_names", "norm_stats") if k not in meta]
        if missing:
            raise CheckpointMismatchError(f"{workdir}: checkpoint {step} metadata lacks {missing}")
        model = model_from_config(requested, axis_name=None)
        ema = config.ema_decay > 0
        variables, meta, step = ckpts.restore_variables(abstract_variables(model), step, kind, ema=ema)
    if len(meta["class_names"]) != requested.classes:
        raise CheckpointMismatchError(f"{workdir}: checkpoint lists {len(meta['class_names'])} classes, "
                                      f"the model has {requested.classes}")
    return LoadedRun(workdir=workdir, config=config, model=model, variables=variables, meta=meta,
                     step=step, kind=kind, weights="ema" if ema else "raw")


def check_data(run: LoadedRun, info: Any, allow_other_data: bool = False) -> None:
    """Refuses evaluation data (a `data.dataset.DatasetInfo`) the run was not trained for.

    Class names (and their order) must equal the checkpoint's; the log-mel shape must fit the
    model. A different dataset fingerprint (a rebuilt dataset, another SNR, another corpus) is an
    error unless `allow_other_data` (deliberate cross-condition evaluation).
    """
    if list(info.class_names) != run.class_names:
        raise CheckpointMismatchError(
            f"dataset {info.path} has {len(info.class_names)} classes {_preview(info.class_names)}, "
            f"the checkpoint was trained on {len(run.class_names)} {_preview(run.class_names)}: "
            "evaluate on data built with the same class list")
    try:
        info.check_fits(run.model_config)
    except ValueError as e:
        raise CheckpointMismatchError(str(e)) from None
    if info.fingerprint != run.dataset_fingerprint and not allow_other_data:
        raise CheckpointMismatchError(
            f"dataset {info.path} (fingerprint {info.fingerprint}) is not the data this run was "
            f"trained on (fingerprint {run.dataset_fingerprint}); its test fold may overlap the "
            "training clips. Pass --allow-other-data to evaluate on it anyway.")


def _preview(names, n: int = 3) -> str:
    names = list(names)
    return "[" + ", ".join(names[:n]) + (", ..." if len(names) > n else "") + "]"
