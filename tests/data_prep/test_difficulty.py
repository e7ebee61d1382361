"""data_prep.difficulty: the linear-probe difficulty proxies run on a built dataset."""

from tests import fixtures


def test_difficulty_probe_runs(tmp_path_factory):
    from data_prep import difficulty

    data_dir = str(fixtures.built_dataset(tmp_path_factory))
    scores = difficulty.probe_scores(data_dir, 20)
    assert 0.0 <= scores["micro_ap"] <= 1.0 and scores["n_train"] == 6
    assert 0.0 <= difficulty.segment_accuracy(data_dir, 20) <= 1.0
