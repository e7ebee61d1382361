"""Data preparation for twostep-sed: the paper's mixing recipe written as a TFDS dataset.

Two sources, one code path: `--source dcase` reads FSDKaggle2018 + TAU Urban Acoustic Scenes
2019 from disk; `--source builtin` first synthesises a procedural corpus in those same layouts.
Both then run `data_prep.prepare.prepare_datasets`. Run as `python -m data_prep --help`.
"""
