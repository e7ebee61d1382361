"""twostep-sed: 2APAE (two-step attention + auto-encoder MTL) for weakly labelled SED in JAX/Flax.

Layout (imports only point down this list; `tests/test_layout.py` checks it):

    config, backend, fileio, progress, losses      leaves: configuration and plumbing
    model/       ops -> layers -> heads -> models  the networks (Flax linen)
    data/        features -> dataset -> input_pipeline
    metrics/     clip, sed                         the paper's clip metrics; localisation
    viz/figures                                    the paper's Fig. 3
    train/       workdir, checkpoint, metric_writer, step, predict -> loop
    evaluation/  restore -> score, report, clip_figures, tagging
    viz/tables, flags, sweep, benchmark/           what the command lines drive

Importing this package never imports TensorFlow; `twostep_jax.data.dataset` imports it lazily,
only to read TFRecords.
"""

from twostep_jax.config import MODEL_NAMES, PRESETS, ModelConfig, model_config
from twostep_jax.model.models import SEDModel, abstract_variables, count_params, create_model, model_from_config

__all__ = [
    "MODEL_NAMES", "PRESETS", "ModelConfig", "SEDModel", "abstract_variables", "count_params",
    "create_model", "model_from_config", "model_config",
]
__version__ = "0.1.0"
