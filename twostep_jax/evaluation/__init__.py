"""Evaluation of a trained run: restoring it, scoring splits, reports, figures, tagging audio."""
