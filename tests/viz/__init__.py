"""Tests of twostep_jax.viz: one test module per module."""
