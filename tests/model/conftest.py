"""Fixtures of the model tests."""

import pytest

from tests.fixtures import SMALL


@pytest.fixture(scope="module")
def x_small():
    """The input of the tiny-shape forwards, [3, 24, 12]."""
    import jax

    return jax.random.normal(jax.random.PRNGKey(42), (3, SMALL["frames"], SMALL["mels"]))
