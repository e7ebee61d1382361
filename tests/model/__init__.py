"""Tests of twostep_jax.model: one test module per module."""
