"""Test-session setup: 8 fake CPU devices for multi-device tests, set before JAX is imported."""

import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from twostep_jax import backend  # noqa: E402

backend.configure()  # the entry points' default (Eigen convolutions on XLA:CPU), before JAX starts

import jax  # noqa: E402  (after the XLA flags above)

# Unit tests run tiny programs: compile time dominates, and XLA's optimisation passes are most of it.
jax.config.update("jax_disable_most_optimizations", True)

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def builtin_dataset(tmp_path_factory):
    """A tiny built-in-corpus dataset (16 mixtures per fold, SNR 20 dB), built once per session."""
    from data_prep.prepare import prepare_builtin

    out = tmp_path_factory.mktemp("builtin_data")
    prepare_builtin(out, [20], mixtures_per_fold=16, workers=2, log=lambda _: None)
    return str(out)
