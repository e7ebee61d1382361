"""One process of a multi-process run on this machine (started by test_two_processes.py):

    python -m tests.multihost.worker DEVICES [--block-tensorflow] -- TRAIN.PY ARGS [-- EVALUATE.PY ARGS]

Sets what the test session sets (DEVICES fake CPU devices, XLA's optimisations off) before JAX
starts, then runs train.py's `main` with the given arguments — the multi-host flags among them,
exactly as a user launches one process per host — and then evaluate.py's `main` if asked.
`--block-tensorflow` makes any import of tensorflow / tensorflow_datasets fail, proving the
training and evaluation path runs without TensorFlow.
"""

import importlib.abc
import os
import sys


class _BlockTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "tensorflow_datasets"):
            raise ImportError(f"{name} is blocked in this process (TensorFlow-free path)")
        return None


def main() -> int:
    argv = sys.argv[1:]
    devices = argv[0]
    cut = argv.index("--")
    if "--block-tensorflow" in argv[:cut]:
        sys.meta_path.insert(0, _BlockTensorFlow())
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
    assert "tensorflow" not in sys.modules or "--block-tensorflow" not in argv[:cut]
    return rc


if __name__ == "__main__":
    sys.exit(main())
