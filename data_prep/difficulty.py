"""Difficulty proxy for a prepared dataset: a linear probe on pooled log-mel features.

Trains one logistic regression per class on [mean over time, max over time] of the z-scored
log-mel (128 numbers per clip) on the training folds and reports clip-level micro/macro average
precision (sklearn, as the paper's metrics) on the held-out fold, per SNR. A linear probe is far
weaker than 2APAE; what matters is the *gap* between SNRs: 0 dB should be clearly harder.

    python -m data_prep.difficulty --data-dir DATA_DIR [--snr 0 10 20] [--test-fold 4]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from twostep_jax import input_pipeline as ip


def pooled_features(logmel: np.ndarray, stats: ip.NormStats) -> np.ndarray:
    """[N, T, F] raw log-mel -> [N, 2F] (time-mean, time-max) of the z-scored log-mel."""
    z = ip.normalize(logmel, stats)
    return np.concatenate([z.mean(axis=1), z.max(axis=1)], axis=1)


def probe_scores(data_dir: str, snr: int, test_fold: int = 4, c: float = 1.0) -> dict[str, float]:
    """{'micro_ap', 'macro_ap', 'n_train', 'n_test'} of the linear probe at one SNR."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score

    train_folds = [f for f in range(1, ip.NUM_FOLDS + 1) if f != test_fold]
    train = ip.load_folds(data_dir, snr, train_folds)
    test = ip.load_folds(data_dir, snr, [test_fold])
    stats = ip.compute_norm_stats(train)
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
        print(f"snr {snr:>3} dB: linear probe micro-AP {r['micro_ap']:.3f} "
              f"macro-AP {r['macro_ap']:.3f} (train {r['n_train']}, test {r['n_test']} clips)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
