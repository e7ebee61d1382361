"""Command-line flags generated from the config dataclasses, so every field is overridable."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any

from twostep_jax.config import ModelConfig, TrainConfig, train_config

# TrainConfig fields set through dedicated flags or not meant for the command line.
_TRAIN_SKIP = {"model_overrides", "data_dir", "preset", "model"}
# ModelConfig fields that are chosen by --model/--preset or duplicated in TrainConfig.
_MODEL_SKIP = {"name", "dtype"}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _parser_type(field_type: Any):
    """argparse converter for a dataclass field's annotation (annotations are strings here)."""
    t = str(field_type)
    if "tuple" in t:
        return lambda s: tuple(int(v) for v in s.split(",") if v.strip())
    if t.startswith("int"):
        return int
    if t.startswith("float"):
        return float
    return str


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    train = parser.add_argument_group("training (defaults: the --preset)")
    for f in dataclasses.fields(TrainConfig):
        if f.name not in _TRAIN_SKIP:
            _add(train, f, f.name, f"default {f.default!r} (paper)")
    model = parser.add_argument_group("model fields (defaults: the --model at the --preset)")
    for f in dataclasses.fields(ModelConfig):
        if f.name not in _MODEL_SKIP:
            _add(model, f, f"model__{f.name}", f"ModelConfig.{f.name}")


def _add(group, field: dataclasses.Field, dest: str, help: str) -> None:
    if str(field.type).startswith("bool"):
        group.add_argument(_flag(field.name), action=argparse.BooleanOptionalAction, default=None,
                           dest=dest, help=help)
    else:
        group.add_argument(_flag(field.name), type=_parser_type(field.type), default=None,
                           dest=dest, help=help)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)} - _TRAIN_SKIP
    overrides = {k: v for k, v in vars(args).items() if k in train_fields and v is not None}
    model_overrides = {k[len("model__"):]: v for k, v in vars(args).items()
                       if k.startswith("model__") and v is not None}
    return train_config(args.preset, model=args.model, data_dir=args.data or "",
                        model_overrides=model_overrides, **overrides)
