"""Model configuration: one frozen dataclass, named presets, one registry of model names.

Every model in this package (2APAE and the paper's baselines) is the same three-part network
configured differently: a convolutional *segmentation* backbone over the log-mel, a pooling *head*
that turns the class time-frequency map into clip probabilities, and an optional *decoder* that
reconstructs the log-mel (the auxiliary task). `ModelConfig` names those choices.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

# Backbones (segmentation networks).
VGG_POOLED = "vgg_pooled"  # 2APAE encoder: blocks with stride-1 3x3 average pooling (Table I).
VGG_BOTTLENECK = "vgg_bottleneck"  # Kong's GMP/GAP/GWRP bottleneck: no pooling (ref §1.12).
ATROUS = "atrous"  # Ren et al.'s dilated 5x5 layers, as adapted in the released code (ref §3.2).

# Heads (classification networks).
TWO_STEP = "two_step"
GMP = "gmp"
GAP = "gap"
GWRP = "gwrp"
ATROUS_ATTENTION = "atrous_attention"
TF_ATTENTION = "tf_attention"

BACKBONES = (VGG_POOLED, VGG_BOTTLENECK, ATROUS)
HEAD_NAMES = (TWO_STEP, GMP, GAP, GWRP, ATROUS_ATTENTION, TF_ATTENTION)  # model/heads.py: HEADS
# Two-step head: the released code's / the paper's equations' Dense layers over absolute mel and
# time positions, or `content`: a time step computed per frame from that frame's class evidence
# (weights shared over time, so the time attention can follow the events; model/heads.py).
ATTENTION_FORMS = ("released_code", "paper_equations", "content")
DECODER_OUTPUTS = ("relu", "linear")
DTYPES = ("float32", "bfloat16")
CONV_IMPLS = ("auto", "xla", "shifted_gemm")  # see model/ops.py


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Everything that fixes a model's parameters and computation.

    Stored with every checkpoint; a checkpoint restores only into a model with an equal config
    (up to `dtype`/`conv_impl`, which change how it computes, not what it holds).
    """

    name: str = "2apae"
    frames: int = 311  # time frames of the input log-mel; fixed by the time-attention Dense layers.
    mels: int = 64
    classes: int = 41
    backbone: str = VGG_POOLED
    channels: tuple[int, ...] = (32, 64, 128, 256)
    kernel_size: int = 3
    dilations: tuple[int, ...] = ()  # per backbone stage (atrous backbone); empty = all 1.
    head: str = TWO_STEP
    attention_form: str = "released_code"
    gwrp_r: float = 0.9998
    # The probability every class's clip output starts at: the bias of the layer that gives the
    # head's class probabilities starts at logit(class_prior) (RetinaNet's prior-probability init),
    # so outputs start "absent" and training raises them where a class's evidence is, instead of
    # first spending hundreds of steps lowering all 41 from 0.5. 3/41: Kong's recipe mixes 3 of
    # 41 classes into every clip. 0 keeps the released code's initial biases (the `paper` preset).
    # Which layer, per head, and the heads it does not apply to: `heads.class_output_bias`.
    class_prior: float = 0.0
    decoder: bool = True
    decoder_channels: tuple[int, ...] = (128, 64, 32)  # then a final 1-channel block.
    decoder_output: str = "relu"
    bn_momentum: float = 0.9  # flax convention; == PyTorch momentum 0.1.
    bn_epsilon: float = 1e-5
    dtype: str = "float32"  # compute dtype; parameters and BatchNorm statistics stay float32.
    conv_impl: str = "auto"

    def __post_init__(self):
        _check_choice("attention_form", self.attention_form, ATTENTION_FORMS)
        _check_choice("decoder_output", self.decoder_output, DECODER_OUTPUTS)
        _check_choice("dtype", self.dtype, DTYPES)
        _check_choice("conv_impl", self.conv_impl, CONV_IMPLS)
        _check_choice("backbone", self.backbone, BACKBONES)
        _check_choice("head", self.head, HEAD_NAMES)
        if self.dilations and len(self.dilations) != len(self.channels):
            raise ValueError(
                f"dilations {self.dilations} must have one entry per backbone stage "
                f"(channels {self.channels})"
            )
        if self.decoder and self.backbone != VGG_POOLED:
            raise ValueError("the reconstruction decoder is defined on the 2APAE encoder only")
        if min(self.frames, self.mels, self.classes) < 1:
            raise ValueError(f"frames/mels/classes must be positive, got {self.frames}/{self.mels}/{self.classes}")
        if not 0.0 <= self.class_prior < 1.0:
            raise ValueError(f"class_prior must be in [0, 1) (0 = the released init), got {self.class_prior}")
        if not 0.0 <= self.gwrp_r <= 1.0:
            raise ValueError(f"gwrp_r must be in [0, 1], got {self.gwrp_r}")

    @property
    def input_shape(self) -> tuple[int, int]:
        """The `[time, mel]` shape of one input log-mel."""
        return (self.frames, self.mels)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(fields))
        if unknown:
            raise ValueError(f"unknown ModelConfig fields {unknown}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def structure(self) -> dict[str, Any]:
        """The fields that determine the parameter tree (for checkpoint compatibility checks)."""
        d = self.to_dict()
        # class_prior only sets an initial bias: a checkpoint holds the same tree either way.
        for runtime_only in ("dtype", "conv_impl", "name", "class_prior"):
            d.pop(runtime_only)
        return d


def _check_choice(field: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"{field}={value!r} is not one of {choices}")


# --- Registry: every model, once. ---------------------------------------------------------
#
# `paper` is the released code's exact sizes; `cpu_small` trains something real on a 2-core CPU
# in minutes; `test_tiny` is for unit tests. All take the data's [311, 64] log-mels.

_PRESET_WIDTHS = {
    # (2APAE encoder, 2APAE decoder, Kong bottleneck, atrous)
    "paper": ((32, 64, 128, 256), (128, 64, 32), (32, 64, 128, 128), (64, 128, 256)),
    "cpu_small": ((8, 16, 24, 32), (24, 16, 8), (8, 16, 24, 24), (8, 16, 32)),
    "test_tiny": ((2, 4, 4, 8), (4, 4, 2), (2, 4, 4, 4), (2, 4, 8)),
}
PRESETS = tuple(_PRESET_WIDTHS)
# Beyond widths: `paper` keeps the released code's initial biases; the CPU presets start the
# class outputs at the label prior (3 of 41 classes per clip) on the heads where validation
# favoured it (`model/heads.class_output_bias`, README "The class-prior init on the other heads").
_PRESET_MODEL_FIELDS = {
    "paper": dict(class_prior=0.0),
    "cpu_small": dict(class_prior=3 / 41),
    "test_tiny": dict(class_prior=3 / 41),
}
assert set(_PRESET_MODEL_FIELDS) == set(_PRESET_WIDTHS)


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """A registered model: the paper's name for it, and how it differs from the 2APAE defaults.

    `fields(encoder, decoder, bottleneck, atrous)` maps a preset's widths to ModelConfig fields.
    """

    display: str
    baseline: bool  # a comparison model of Table IV (not 2APAE)
    fields: Callable[[tuple, tuple, tuple, tuple], dict[str, Any]]


# In the paper's Table IV row order. Adding a model = one entry here (and, for a new head, its
# class in `model/heads.py`).
MODELS: dict[str, ModelEntry] = {
    "gap": ModelEntry("GAP", True, lambda enc, dec, bott, atr: dict(
        backbone=VGG_BOTTLENECK, channels=bott, head=GAP, decoder=False)),
    "gmp": ModelEntry("GMP", True, lambda enc, dec, bott, atr: dict(
        backbone=VGG_BOTTLENECK, channels=bott, head=GMP, decoder=False)),
    "gwrp": ModelEntry("GWRP", True, lambda enc, dec, bott, atr: dict(
        backbone=VGG_BOTTLENECK, channels=bott, head=GWRP, decoder=False)),
    "atrous_ap": ModelEntry("Atrous AP", True, lambda enc, dec, bott, atr: dict(
        backbone=ATROUS, channels=atr, kernel_size=5, dilations=(1, 2, 4), head=ATROUS_ATTENTION,
        decoder=False)),
    # Plain single-step attention over T x F on the 2APAE encoder: isolates the head.
    "attention": ModelEntry("Attention", True, lambda enc, dec, bott, atr: dict(
        channels=enc, head=TF_ATTENTION, decoder=False)),
    "2apae": ModelEntry("2APAE", False, lambda enc, dec, bott, atr: dict(
        channels=enc, decoder_channels=dec)),
}
MODEL_NAMES = tuple(MODELS)
BASELINES = tuple(name for name, entry in MODELS.items() if entry.baseline)
# The paper's Table IV reports 2APAE at its best reconstruction weight; Table V ablates it.
TABLE_IV_ALPHA = 0.001
TABLE_V_ALPHAS = (0.0, 0.001, 0.01)


def model_config(name: str, preset: str = "paper", **overrides: Any) -> ModelConfig:
    """The `ModelConfig` of a registered model at a preset size, with field overrides."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {MODEL_NAMES}")
    if preset not in _PRESET_WIDTHS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {PRESETS}")
    fields = dict(name=name, **MODELS[name].fields(*_PRESET_WIDTHS[preset]), **_PRESET_MODEL_FIELDS[preset])
    for key, value in overrides.items():
        if key not in ModelConfig.__dataclass_fields__ or key == "name":
            raise ValueError(f"unknown model override {key!r}")
        fields[key] = tuple(value) if isinstance(value, list) else value
    return ModelConfig(**fields)


def alpha_text(alpha: float, decoder: bool) -> str:
    """α as reports and logs state it: a model without a decoder has no reconstruction loss to
    weigh."""
    return f"α = {alpha:g}" if decoder else "no decoder, α unused"


# --- Training configuration ------------------------------------------------------------------

# Fields of TrainConfig that may differ when a run is resumed (they change how a run reports or
# how long it goes on, not what it computes step by step).
PARALLEL_FORMS = ("pmap", "sharded")  # TrainConfig.parallel: train/parallel.py
LR_SCHEDULES = ("plateau", "cosine")  # TrainConfig.lr_schedule: train/step.learning_rate_schedule
# `parallel` too: both forms compute the same step, so a run may resume in the other one.
RESUMABLE_FIELDS = ("epochs", "log_every_steps", "keep_checkpoints", "progress", "distributed",
                    "parallel")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One training run: model, data, the paper's optimisation recipe and bookkeeping."""

    model: str = "2apae"
    preset: str = "paper"
    model_overrides: tuple[tuple[str, Any], ...] = ()  # (field, value) pairs on the ModelConfig.
    data_dir: str = ""
    snr: int = 20
    test_fold: int = 1
    val_fraction: float = 0.1  # honest model selection: validation carved from training folds.
    select_on_test_fold: bool = False  # the released code's choice: select on the test fold.
    alpha: float = 0.001
    learning_rate: float = 1e-3
    global_batch: int = 24
    epochs: int = 50
    # "plateau": the paper's ReduceLROnPlateau (below); "cosine": cosine decay to 0 over all
    # `epochs` (a function of the step, so a resumed run follows the same curve; resuming with
    # a different --epochs reshapes the rest of it).
    lr_schedule: str = "plateau"
    plateau_factor: float = 0.1  # ReduceLROnPlateau(mode='max', patience=3) on val micro-AP.
    plateau_patience: int = 3
    plateau_threshold: float = 1e-4  # relative, as PyTorch's default threshold_mode='rel'.
    # Polyak averaging: > 0 keeps an exponential moving average of the weights (and BatchNorm
    # statistics) with this decay; validation, the best checkpoint and evaluation use it. 0: the
    # paper's raw weights. train/step.ema_decay_at gives the warm-up.
    ema_decay: float = 0.0
    seed: int = 0
    checkpoint_every_steps: int = 0  # 0: only at epoch ends (and on a new best).
    keep_checkpoints: int = 2
    log_every_steps: int = 25
    progress: bool = True
    distributed: bool = False  # jax.distributed.initialize() first (backend.initialize_distributed)
    parallel: str = "pmap"  # "pmap" | "sharded" (jit over a Mesh): train.parallel

    def __post_init__(self):
        if self.test_fold not in (1, 2, 3, 4):
            raise ValueError(f"test_fold must be 1..4, got {self.test_fold}")
        if self.global_batch < 1 or self.epochs < 1:
            raise ValueError("global_batch and epochs must be positive")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {self.alpha}")
        if not 0.0 < self.learning_rate < float("inf"):
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if min(self.log_every_steps, self.keep_checkpoints) < 1 or self.checkpoint_every_steps < 0:
            raise ValueError("log_every_steps and keep_checkpoints must be >= 1, "
                             "checkpoint_every_steps >= 0")
        if not 0.0 < self.plateau_factor <= 1.0 or self.plateau_patience < 0:
            raise ValueError(f"plateau_factor must be in (0, 1] and plateau_patience >= 0, got "
                             f"{self.plateau_factor}, {self.plateau_patience}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.parallel not in PARALLEL_FORMS:
            raise ValueError(f"parallel must be one of {PARALLEL_FORMS}, got {self.parallel!r}")

    @property
    def train_folds(self) -> tuple[int, ...]:
        return tuple(f for f in (1, 2, 3, 4) if f != self.test_fold)

    def model_config(self) -> ModelConfig:
        return model_config(self.model, self.preset, **dict(self.model_overrides))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["model_overrides"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.model_overrides}
        d["model_config"] = self.model_config().to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        d = dict(d)
        d.pop("model_config", None)
        overrides = dict(d.pop("model_overrides", {}) or {})
        if "dtype" in d:  # run folders written before dtype lived only in the ModelConfig
            dtype = d.pop("dtype")
            if dtype != ModelConfig.dtype:
                overrides.setdefault("dtype", dtype)
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - fields)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}")
        return cls(model_overrides=tuple(sorted(
            (k, tuple(v) if isinstance(v, list) else v) for k, v in overrides.items())), **d)


# Training presets: the paper's recipe, a CPU demo budget, and unit-test sizes.
TRAIN_PRESETS: dict[str, dict[str, Any]] = {
    "paper": dict(global_batch=24, epochs=50),
    # Batch 8: on a 2-core CPU the number of steps, not clips per step, limits what is learnt.
    # Learning rate 3e-3, chosen on validation (never the test fold): 2APAE after 400 steps on
    # the demo's data reached val micro-AP 0.446 at 3e-3 against 0.269 at the paper's 1e-3
    # (released time attention; content form 0.572 vs 0.302) (README, "Choosing the CPU recipe").
    # 12 epochs with a weight average (EMA 0.99), also chosen on validation over 3 seeds (README,
    # "The weight average and 12 epochs"); the demo still fits its 15 minutes.
    "cpu_small": dict(global_batch=8, epochs=12, learning_rate=3e-3, ema_decay=0.99, log_every_steps=10),
    "test_tiny": dict(global_batch=8, epochs=2, log_every_steps=1),
}


def train_config(preset: str = "paper", **overrides: Any) -> TrainConfig:
    """The TrainConfig of a preset (model size and budget) with field overrides."""
    if preset not in TRAIN_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {tuple(TRAIN_PRESETS)}")
    fields = dict(TRAIN_PRESETS[preset], preset=preset)
    fields.update(overrides)
    if isinstance(fields.get("model_overrides"), dict):
        fields["model_overrides"] = tuple(sorted(fields["model_overrides"].items()))
    return TrainConfig(**fields)
