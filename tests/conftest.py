"""Test-session setup: 8 fake CPU devices for multi-device tests, set before JAX is imported;
the session's shared data and run (helpers in tests/fixtures.py)."""

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

from tests import fixtures  # noqa: E402


@pytest.fixture(scope="session")
def builtin_dataset(tmp_path_factory):
    """The tiny built-in-corpus dataset (8 mixtures per fold, SNR 20 dB), built once per session."""
    return str(fixtures.build_tiny_dataset(tmp_path_factory.mktemp("builtin_data")))


@pytest.fixture(scope="session")
def tiny_run(builtin_dataset, tmp_path_factory):
    """A `test_tiny` 2APAE run (1 epoch, 8 fake devices) on `builtin_dataset`, trained and
    evaluated once per session (fixtures.TinyRun)."""
    return fixtures.train_tiny_run(builtin_dataset, tmp_path_factory.mktemp("tiny_run"))


@pytest.fixture(scope="session")
def loaded_run(tiny_run):
    """`tiny_run`'s best checkpoint restored for evaluation (evaluation.restore.LoadedRun)."""
    from twostep_jax.evaluation.restore import load_run

    return load_run(str(tiny_run.workdir))
