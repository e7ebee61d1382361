"""Difficulty proxies for a prepared dataset: linear probes on pooled log-mel features.

* Clip probe: one logistic regression per class on [mean over time, max over time] of the
  z-scored log-mel (128 numbers per clip), trained on the training folds; clip-level micro/macro
  average precision (sklearn, the paper's metrics) on the held-out fold.
* Segment probe: the known event boundaries cut each clip into its 3 events; one multinomial
  logistic regression on [mean, max, std] over each event's frames; top-1 accuracy on the
  held-out fold -- how recognisable an event is at that SNR, with localisation given away.
Linear probes are far weaker than 2APAE; what matters is the gap between SNRs: 0 dB should be
clearly harder than 20 dB.

    python -m data_prep.difficulty --data-dir DATA_DIR [--snr 0 10 20] [--test-fold 4]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from twostep_jax.data import features
from twostep_jax.data import dataset
from twostep_jax.data import input_pipeline as ip


def pooled_features(logmel: np.ndarray, stats: ip.NormStats) -> np.ndarray:
    """[N, T, F] raw log-mel -> [N, 2F] (time-mean, time-max) of the z-scored log-mel."""
    z = ip.normalize(logmel, stats)
    return np.concatenate([z.mean(axis=1), z.max(axis=1)], axis=1)


def segment_features(clips: dataset.ClipArrays,
                     stats: ip.NormStats) -> tuple[np.ndarray, np.ndarray]:
    """Per event: ([mean, max, std] over its frames of the z-scored log-mel [3F], label)."""
    frames_per_s = features.SAMPLE_RATE / features.HOP
    x, y = [], []
    for logmel, events in zip(clips.logmel, clips.events):
        z = ip.normalize(logmel, stats)
        for label, onset, offset in events:
            seg = z[int(onset * frames_per_s):int(offset * frames_per_s) + 1]
            x.append(np.concatenate([seg.mean(0), seg.max(0), seg.std(0)]))
            y.append(label)
    return np.array(x), np.array(y)


def _folds(data_dir: str, snr: int, test_fold: int):
    train_folds = [f for f in range(1, dataset.NUM_FOLDS + 1) if f != test_fold]
    train = dataset.load_folds(data_dir, snr, train_folds)
    test = dataset.load_folds(data_dir, snr, [test_fold])
    return train, test, ip.compute_norm_stats(train)


def segment_accuracy(data_dir: str, snr: int, test_fold: int = 4, c: float = 1.0) -> float:
    """Top-1 accuracy of the segment probe at one SNR."""
    from sklearn.linear_model import LogisticRegression

    train, test, stats = _folds(data_dir, snr, test_fold)
    x_train, y_train = segment_features(train, stats)
    x_test, y_test = segment_features(test, stats)
    model = LogisticRegression(C=c, max_iter=3000).fit(x_train, y_train)
    return float(np.mean(model.predict(x_test) == y_test))


def probe_scores(data_dir: str, snr: int, test_fold: int = 4, c: float = 1.0) -> dict[str, float]:
    """{'micro_ap', 'macro_ap', 'n_train', 'n_test'} of the clip probe at one SNR."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score

    train, test, stats = _folds(data_dir, snr, test_fold)
    x_train, x_test = pooled_features(train.logmel, stats), pooled_features(test.logmel, stats)
    scores = np.zeros_like(test.target)
    for k in range(train.target.shape[1]):
        y = train.target[:, k]
        if y.min() == y.max():  # class absent (or always present) in training folds
            scores[:, k] = y[0]
            continue
        model = LogisticRegression(C=c, max_iter=2000)
        scores[:, k] = model.fit(x_train, y).predict_proba(x_test)[:, 1]
    present = test.target.sum(axis=0) > 0  # macro AP over classes present in the test fold
    return {"micro_ap": float(average_precision_score(test.target, scores, average="micro")),
            "macro_ap": float(average_precision_score(test.target[:, present],
                                                      scores[:, present], average="macro")),
            "n_train": len(train), "n_test": len(test)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m data_prep.difficulty", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--snr", type=int, nargs="+", default=[0, 10, 20])
    p.add_argument("--test-fold", type=int, default=4)
    args = p.parse_args(argv)
    for snr in args.snr:
        r = probe_scores(args.data_dir, snr, args.test_fold)
        accuracy = segment_accuracy(args.data_dir, snr, args.test_fold)
        print(f"snr {snr:>3} dB: clip probe micro-AP {r['micro_ap']:.3f} "
              f"macro-AP {r['macro_ap']:.3f}; segment probe top-1 {accuracy:.3f} "
              f"(train {r['n_train']}, test {r['n_test']} clips)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
