"""Process-level XLA set-up that has to happen before JAX starts its backend.

XLA reads ``XLA_FLAGS`` and the fake-CPU-device count once, when the first device is queried, so
the entry points (``train.py``, ``evaluate.py``, ``python -m twostep_jax.benchmark``, the test
suite's conftest) call :func:`configure` before anything touches a device.

Eigen convolutions on XLA:CPU. jax 0.10's XLA:CPU runs convolutions through YNNPACK, whose
weight-gradient convolution is slow; with XLA's Eigen convolutions instead the cpu_small 2APAE
train step measured 2.5x faster on the 2-core development machine (BENCHMARKS.md). The switch
is an *experimental* XLA flag: an XLA that does not know a flag in ``XLA_FLAGS`` aborts the
process at start-up, so it is only added where it is known to be accepted (a verified jaxlib
version, otherwise a one-off probe in a subprocess). It only concerns the CPU backend: on GPU/TPU
it changes nothing.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import warnings

EIGEN_CONV_FLAG = "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution"
# jaxlib versions on which EIGEN_CONV_FLAG was measured and is accepted without probing.
_VERIFIED_JAXLIB = ("0.10.2",)


def add_eigen_conv_flag(parser) -> None:
    """The entry points' `--xla-cpu-eigen-conv / --no-xla-cpu-eigen-conv` flag (argparse)."""
    import argparse

    parser.add_argument("--xla-cpu-eigen-conv", action=argparse.BooleanOptionalAction, default=True,
                        help="XLA:CPU: Eigen instead of YNNPACK convolutions, 2.5x faster cpu_small "
                             "training (twostep_jax.backend; default on; no effect on GPU/TPU)")


def backend_started() -> bool:
    """Whether JAX has already created a backend (after which XLA_FLAGS has no effect)."""
    try:
        from jax._src import xla_bridge

        return bool(getattr(xla_bridge, "_backends", {}))
    except Exception:  # private API moved: assume not started rather than refuse to configure
        return False


@functools.lru_cache(maxsize=None)
def xla_flag_supported(flag: str) -> bool:
    """Whether this jaxlib's XLA starts with `flag` in XLA_FLAGS (EIGEN_CONV_FLAG on a verified
    jaxlib is taken as known; anything else is probed once, in a subprocess)."""
    import jaxlib

    if flag == EIGEN_CONV_FLAG and jaxlib.__version__ in _VERIFIED_JAXLIB:
        return True
    env = dict(os.environ, XLA_FLAGS=flag, JAX_PLATFORMS="cpu")
    try:
        probe = subprocess.run([sys.executable, "-c", "import jax; jax.devices('cpu')"], env=env,
                               capture_output=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def eigen_convolutions_requested() -> bool:
    """Whether XLA_FLAGS asks XLA:CPU for Eigen (not YNNPACK) convolutions."""
    return EIGEN_CONV_FLAG in os.environ.get("XLA_FLAGS", "").split()


def _add_xla_flag(flag: str) -> None:
    name = flag.split("=", 1)[0]
    flags = os.environ.get("XLA_FLAGS", "")
    if name not in flags:  # an explicit user setting of the same flag wins
        os.environ["XLA_FLAGS"] = f"{flags} {flag}".strip()


def configure(num_cpu_devices: int = 0, eigen_convolutions: bool = True) -> None:
    """Sets what must precede the backend's start.

    Args:
      num_cpu_devices: > 1 asks for that many fake CPU devices (to exercise pmap on a CPU-only
        host), unless XLA_FLAGS already sets xla_force_host_platform_device_count.
      eigen_convolutions: use XLA's Eigen convolutions on CPU instead of YNNPACK's, where this
        XLA supports the switch.
    """
    if backend_started():
        import jax

        too_few = num_cpu_devices > 1 and jax.default_backend() == "cpu" and jax.device_count() < num_cpu_devices
        if too_few or eigen_convolutions != eigen_convolutions_requested():
            warnings.warn("twostep_jax.backend.configure() called after JAX started its backend; "
                          "XLA flags and the CPU device count are unchanged", stacklevel=2)
        return
    if num_cpu_devices > 1 and "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        import jax

        jax.config.update("jax_num_cpu_devices", num_cpu_devices)
    if eigen_convolutions and xla_flag_supported(EIGEN_CONV_FLAG):
        _add_xla_flag(EIGEN_CONV_FLAG)


# Multi-host launch settings, read by `initialize_distributed` when not passed explicitly (the
# flags of train.py / evaluate.py set them). JAX itself reads JAX_COORDINATOR_ADDRESS as well.
DISTRIBUTED_ENV = {"coordinator_address": "TWOSTEP_COORDINATOR_ADDRESS",
                   "num_processes": "TWOSTEP_NUM_PROCESSES", "process_id": "TWOSTEP_PROCESS_ID"}


def initialize_distributed(coordinator_address: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None) -> None:
    """`jax.distributed.initialize` once per process, before any device query.

    Arguments left None come from TWOSTEP_COORDINATOR_ADDRESS / TWOSTEP_NUM_PROCESSES /
    TWOSTEP_PROCESS_ID, and where those are unset JAX's own detection applies (SLURM, Open MPI,
    Cloud TPU, JAX_COORDINATOR_ADDRESS). CPU processes exchange collectives through gloo (the
    default CPU client has none across processes); GPU/TPU backends ignore that setting.
    """
    import jax

    if jax.distributed.is_initialized():
        return
    given = {"coordinator_address": coordinator_address, "num_processes": num_processes,
             "process_id": process_id}
    kwargs = {}
    for key, value in given.items():
        if value is None and os.environ.get(DISTRIBUTED_ENV[key]):
            value = os.environ[DISTRIBUTED_ENV[key]]
        if value is not None:
            kwargs[key] = value if key == "coordinator_address" else int(value)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(**kwargs)


def add_distributed_flags(parser) -> None:
    """train.py's multi-host flags (argparse); each defaults to its TWOSTEP_* variable."""
    group = parser.add_argument_group("multi-host (one process per host; see README)")
    group.add_argument("--coordinator-address", help="HOST:PORT of process 0's coordinator "
                       f"(env {DISTRIBUTED_ENV['coordinator_address']})")
    group.add_argument("--num-processes", type=int, help=f"env {DISTRIBUTED_ENV['num_processes']}")
    group.add_argument("--process-id", type=int, help=f"0..num_processes-1 (env {DISTRIBUTED_ENV['process_id']})")


def distributed_requested(args) -> bool:
    """Whether the flags or the environment ask for a multi-process run."""
    return any(getattr(args, k, None) is not None for k in DISTRIBUTED_ENV) or any(
        os.environ.get(v) for v in DISTRIBUTED_ENV.values())
