"""Training: the pure step and its parallel wrappers, the loop, checkpoints, logs, run folders."""
