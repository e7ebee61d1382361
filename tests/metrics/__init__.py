"""Tests of twostep_jax.metrics: one test module per module."""
