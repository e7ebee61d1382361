"""Tests of data_prep: one test module per module."""
