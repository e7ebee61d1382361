"""Tests of twostep_jax.evaluation: one test module per module."""
