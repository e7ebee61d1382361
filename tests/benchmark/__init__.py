"""Tests of twostep_jax.benchmark: one test module per module."""
