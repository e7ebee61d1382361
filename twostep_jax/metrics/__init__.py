"""Metrics: the paper's clip-level tagging metrics and frame/event localisation metrics."""
