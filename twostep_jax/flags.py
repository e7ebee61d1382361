"""Command-line flags generated from the config dataclasses, so every field is overridable."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any

from twostep_jax.config import LR_SCHEDULES, PARALLEL_FORMS, ModelConfig, TrainConfig, train_config

# TrainConfig fields set through dedicated flags or not meant for the command line.
_TRAIN_SKIP = {"model_overrides", "data_dir", "preset", "model"}
# Fields whose flag takes one of a fixed set of values.
_CHOICES = {"parallel": PARALLEL_FORMS, "lr_schedule": LR_SCHEDULES}
# ModelConfig fields that are chosen by --model/--preset.
_MODEL_SKIP = {"name"}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _int_tuple(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _parser_type(field_type: Any):
    """argparse converter for a dataclass field's resolved type (`typing.get_type_hints`)."""
    if typing.get_origin(field_type) is tuple:
        return _int_tuple
    if field_type in (int, float, str):
        return field_type
    raise TypeError(f"no command-line converter for a field of type {field_type!r}")


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    train = parser.add_argument_group("training (defaults: the --preset)")
    train_types = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        if f.name not in _TRAIN_SKIP:
            _add(train, f.name, train_types[f.name], f.name, f"default {f.default!r} (paper)")
    model = parser.add_argument_group("model fields (defaults: the --model at the --preset)")
    model_types = typing.get_type_hints(ModelConfig)
    for f in dataclasses.fields(ModelConfig):
        if f.name not in _MODEL_SKIP:
            _add(model, f.name, model_types[f.name], f"model__{f.name}", f"ModelConfig.{f.name}")


def _add(group, name: str, field_type: Any, dest: str, help: str) -> None:
    if field_type is bool:
        group.add_argument(_flag(name), action=argparse.BooleanOptionalAction, default=None,
                           dest=dest, help=help)
    else:
        group.add_argument(_flag(name), type=_parser_type(field_type), default=None,
                           dest=dest, help=help, choices=_CHOICES.get(dest))


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)} - _TRAIN_SKIP
    overrides = {k: v for k, v in vars(args).items() if k in train_fields and v is not None}
    model_overrides = {k[len("model__"):]: v for k, v in vars(args).items()
                       if k.startswith("model__") and v is not None}
    return train_config(args.preset, model=args.model, data_dir=args.data or "",
                        model_overrides=model_overrides, **overrides)
