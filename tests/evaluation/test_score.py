"""twostep_jax.evaluation.score: the metrics of a split equal sklearn's on the same predictions;
the validation split is the training carve."""

import numpy as np
import pytest

from tests.fixtures import normalize


def test_metrics_equal_sklearn_on_the_same_predictions(tiny_run, loaded_run):
    from sklearn.metrics import average_precision_score, roc_auc_score

    from twostep_jax.evaluation.score import evaluate_split, load_split

    _, clips = load_split(loaded_run, "test")
    report, predictions = evaluate_split(loaded_run, "test")
    probs, y = predictions["clip_probs"], (predictions["target"] > 0.5).astype(int)
    assert list(predictions["mixture_name"]) == list(clips.mixture_name)
    # The pmapped batched path equals the single-device forward used by figures and tagging.
    single = np.concatenate([loaded_run.forward(normalize(loaded_run, clips.logmel[i:i + 1]))["clip_probs"]
                             for i in range(len(clips))])
    np.testing.assert_allclose(probs, single, atol=1e-5)

    defined = (y.sum(0) > 0) & (y.sum(0) < len(y))
    assert report["clip"]["micro_ap"] == pytest.approx(average_precision_score(y, probs, average="micro"), abs=1e-12)
    assert report["clip"]["macro_ap"] == pytest.approx(
        average_precision_score(y[:, defined], probs[:, defined], average="macro"), abs=1e-12)
    assert report["clip"]["macro_auc"] == pytest.approx(roc_auc_score(y[:, defined], probs[:, defined]), abs=1e-12)
    for k in np.flatnonzero(defined):
        per_class = report["clip"]["per_class"][loaded_run.class_names[k]]
        assert per_class["ap"] == pytest.approx(average_precision_score(y[:, k], probs[:, k]), abs=1e-12)
        assert per_class["auc"] == pytest.approx(roc_auc_score(y[:, k], probs[:, k]), abs=1e-12)
    assert report["localisation"]["n_clips"] == len(clips)
    assert report["localisation"]["n_ref_events"] == sum(len(e) for e in clips.events)
    # The per-class breakdown adds up to the overall counts, one row per class in the table.
    by_class = report["localisation_per_class"]
    assert list(by_class) == list(loaded_run.class_names)
    assert sum(c["n_ref"] for c in by_class.values()) == report["localisation"]["n_ref_events"]
    assert sum(c["n_est"] for c in by_class.values()) == report["localisation"]["n_est_events"]
    for k, name in enumerate(loaded_run.class_names):
        n_ref = sum(e[0] == k for events in clips.events for e in events)
        assert by_class[name]["n_ref"] == n_ref
        assert (by_class[name]["max_tpr"] is None) == (n_ref == 0)
    # The tiny run is 2APAE: the report states its α; a baseline's says there is none to weigh.
    from twostep_jax.evaluation.report import alpha_text, report_markdown

    assert report["decoder"] is True
    markdown = report_markdown(report)
    assert markdown.startswith(f"## 2apae (test_tiny, α = {report['alpha']:g}) — test split")
    assert "| class | positives | AP | AUC | events | median duration s | detected | event-F1 | max TPR |" in markdown
    old_report = {k: v for k, v in report.items() if k != "localisation_per_class"}
    assert "| class | positives | AP | AUC |\n" in report_markdown(old_report)
    assert alpha_text(0.001, decoder=False) == "no decoder, α unused"


def test_val_split_is_the_training_carve(tiny_run, loaded_run):
    from twostep_jax.evaluation.score import load_split
    from twostep_jax.data.dataset import training_splits

    _, train, val = training_splits(loaded_run.config)
    _, val_split = load_split(loaded_run, "val")
    _, train_split = load_split(loaded_run, "train")
    assert list(val_split.mixture_name) == list(val.mixture_name)
    assert list(train_split.mixture_name) == list(train.mixture_name)
    assert not set(val_split.mixture_name) & set(train_split.mixture_name)
