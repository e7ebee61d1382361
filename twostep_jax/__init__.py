"""twostep-sed: 2APAE (two-step attention + auto-encoder MTL) for weakly labelled SED in JAX/Flax.

Importing this package never imports TensorFlow; the TFRecord input pipeline
(`twostep_jax.input_pipeline`) imports it lazily.
"""

from twostep_jax.config import MODEL_NAMES, PRESETS, ModelConfig, model_config
from twostep_jax.models import SEDModel, abstract_variables, count_params, create_model, model_from_config

__all__ = [
    "MODEL_NAMES", "PRESETS", "ModelConfig", "SEDModel", "abstract_variables", "count_params",
    "create_model", "model_config", "model_from_config",
]
__version__ = "0.1.0"
