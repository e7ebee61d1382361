"""One process of a multi-process run on this machine (started by test_two_processes.py):

    python -m tests.multihost.worker DEVICES [--block-tensorflow] -- TRAIN.PY ARGS [-- EVALUATE.PY ARGS]

Sets what the test session sets (DEVICES fake CPU devices, XLA's optimisations off) before JAX
starts, then runs train.py's `main` with the given arguments — the multi-host flags among them,
exactly as a user launches one process per host — and then evaluate.py's `main` if asked.
`--block-tensorflow` makes any import of tensorflow / tensorflow_datasets fail, proving the
training and evaluation path runs without TensorFlow.
"""

import os
import sys


def main() -> int:
    argv = sys.argv[1:]
    devices = argv[0]
    cut = argv.index("--")
    if "--block-tensorflow" in argv[:cut]:
        # As if not installed: `import tensorflow` raises ModuleNotFoundError and
        # importlib.util.find_spec("tensorflow") is None (what etils and our reader check).
        for name in ("tensorflow", "tensorflow_datasets"):
            sys.modules[name] = None
    commands = " ".join(argv[cut + 1:]).split(" -- ")
    os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    os.environ["JAX_PLATFORMS"] = "cpu"
    import jax

    jax.config.update("jax_disable_most_optimizations", True)
    import evaluate
    import train

    rc = train.main(commands[0].split())
    if rc == 0 and len(commands) > 1:
        rc = evaluate.main(commands[1].split())
    if "--block-tensorflow" in argv[:cut]:
        assert sys.modules["tensorflow"] is None  # still blocked: nothing imported TensorFlow
    return rc


if __name__ == "__main__":
    sys.exit(main())
