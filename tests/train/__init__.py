"""Tests of twostep_jax.train: one test module per module."""
