"""Throughput benchmark (`python -m twostep_jax.benchmark`): step time, clips/s, FLOPs, MFU."""
