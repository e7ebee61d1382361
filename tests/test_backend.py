"""twostep_jax.backend: XLA flags set before the backend starts, never an unknown one."""

import os

import pytest

from twostep_jax import backend


def test_test_session_runs_with_eigen_convolutions():
    # conftest calls backend.configure() like the entry points do, before JAX starts.
    import jax

    assert backend.EIGEN_CONV_FLAG in os.environ["XLA_FLAGS"]
    jax.devices()
    assert backend.backend_started()
    assert jax.device_count() == 8  # the flags were read: conftest's fake device count took effect


def test_configure_after_backend_start_warns_and_changes_nothing(monkeypatch):
    import jax

    jax.devices()
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
    with pytest.warns(UserWarning, match="after JAX started its backend"):
        backend.configure(num_cpu_devices=4)  # asks for Eigen convolutions, which XLA_FLAGS lacks
    assert os.environ["XLA_FLAGS"] == "--xla_force_host_platform_device_count=8"
    with pytest.warns(UserWarning, match="after JAX started its backend"):
        backend.configure(num_cpu_devices=16, eigen_convolutions=False)  # 16 > the 8 running


def test_configure_after_start_is_silent_when_nothing_would_change():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        backend.configure(num_cpu_devices=8)  # the session's flags already hold both


def test_add_xla_flag_appends_once_and_keeps_user_setting(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
    backend._add_xla_flag(backend.EIGEN_CONV_FLAG)
    backend._add_xla_flag(backend.EIGEN_CONV_FLAG)
    assert os.environ["XLA_FLAGS"].split() == ["--xla_force_host_platform_device_count=8", backend.EIGEN_CONV_FLAG]
    # A user's own value of the same flag wins.
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_experimental_ynn_fusion_type=individual_convolution")
    backend._add_xla_flag(backend.EIGEN_CONV_FLAG)
    assert os.environ["XLA_FLAGS"] == "--xla_cpu_experimental_ynn_fusion_type=individual_convolution"


def test_flag_probe_tells_known_from_unknown_flags(monkeypatch):
    import jaxlib

    # Unverified jaxlib version: the Eigen flag is probed in a subprocess like any other flag.
    monkeypatch.setattr(jaxlib, "__version__", "0.0.0-unverified")
    backend.xla_flag_supported.cache_clear()
    try:
        assert backend.xla_flag_supported(backend.EIGEN_CONV_FLAG)
        assert not backend.xla_flag_supported("--xla_twostep_no_such_flag=1")
    finally:
        backend.xla_flag_supported.cache_clear()
