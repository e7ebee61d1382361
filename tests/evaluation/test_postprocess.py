"""evaluation.postprocess: read-out, median filter and threshold chosen on validation, applied at test."""

import json

import numpy as np
import pytest

from twostep_jax.evaluation import postprocess as pp
from twostep_jax.metrics.sed import localisation_metrics

HOP, DUR, T, K = 0.1, 10.0, 100, 3


def synthetic_outputs(seed=0, n=6):
    """Clips with one event each; `frame_outputs["clean"]` localises it, with 1-frame spikes on
    the event's class elsewhere, and `frame_outputs["flat"]` is uninformative noise."""
    rng = np.random.default_rng(seed)
    clean = np.full((n, T, K), 0.05)
    events, clip = [], np.full((n, K), 0.1)
    for i in range(n):
        k, a = int(rng.integers(K)), int(rng.integers(25, 55))
        clean[i, a:a + 20, k] = 0.8
        clean[i, [5, 15, 85, 95], k] = 0.95  # isolated 1-frame spikes, far from the event
        events.append([(k, a * HOP, (a + 20) * HOP)])
        clip[i, k] = 0.9
    flat = rng.uniform(0.0, 1.0, (n, T, K))
    return {"clip_probs": clip, "frame_outputs": {"clean": clean, "flat": flat}}, events


def test_candidates_and_gating():
    outputs, _ = synthetic_outputs()
    assert pp.candidate_names(outputs) == ["clean", "clean*clip", "flat", "flat*clip"]
    gated = pp.readout(outputs, "flat*clip")
    np.testing.assert_allclose(gated, outputs["frame_outputs"]["flat"] * outputs["clip_probs"][:, None, :])
    with pytest.raises(ValueError, match="unknown read-out 'nope'.*clean"):
        pp.readout(outputs, "nope")


def test_selection_picks_the_localising_readout_and_the_filter_that_removes_spikes():
    outputs, events = synthetic_outputs()
    choice = pp.select_postprocessing(outputs, events, HOP, DUR, median_filters=(1, 5), thresholds=(0.3, 0.5, 0.9))
    # 1-frame spikes above the event's own score are false alarms at every threshold below 0.95
    # and split no event: only the median filter removes them, without touching 20-frame events.
    assert choice["readout"].startswith("clean") and choice["median_filter"] == 5
    # 0.9 is above the events' 0.8 (nothing detected); 0.3 and 0.5 both find every event: the
    # first best wins.
    assert choice["threshold"] == 0.3 and choice["val_event_f1"] == pytest.approx(1.0)
    assert choice["val_psds1"] == max(v for row in choice["candidates"].values() for v in row.values())
    assert choice["candidates"]["clean"]["5"] > choice["candidates"]["clean"]["1"]
    assert choice["val_psds_alpha0"] == choice["candidates_alpha0"][choice["readout"]]["5"]


def test_ties_at_zero_psds1_are_broken_by_the_unpenalised_psds():
    # Three classes; the weak candidate localises only class 0's events: TPRs (1, 0, 0) have
    # mean 1/3 < std 0.47, so PSDS1 (alpha_st = 1) is 0 for every candidate, but the weak one
    # has the higher unpenalised PSDS (alpha_st = 0).
    outputs, events = synthetic_outputs()
    weak = outputs["frame_outputs"]["clean"].copy()
    for i, ev in enumerate(events):
        k = ev[0][0]
        if k != 0:
            weak[i, :, k] = 0.05
    outputs = {"clip_probs": outputs["clip_probs"],
               "frame_outputs": {"a_flat": np.full_like(weak, 0.5), "b_weak": weak}}
    choice = pp.select_postprocessing(outputs, events, HOP, DUR, median_filters=(5,), thresholds=(0.3,))
    assert all(v == 0.0 for row in choice["candidates"].values() for v in row.values())
    assert choice["readout"].startswith("b_weak")
    with pytest.raises(ValueError, match="no reference events"):
        pp.select_postprocessing(outputs, [[] for _ in events], HOP, DUR)


def test_stored_choice_is_tied_to_its_checkpoint(tmp_path):
    choice = {"readout": "clean", "median_filter": 5, "fill_gaps": 11, "threshold": 0.3}
    pp.save_postprocessing(str(tmp_path), choice, {"kind": "best", "step": 4})
    assert pp.load_postprocessing(str(tmp_path), {"kind": "best", "step": 4})["readout"] == "clean"
    assert pp.load_postprocessing(str(tmp_path), {"kind": "best", "step": 6}) is None
    assert pp.load_postprocessing(str(tmp_path / "other"), {"kind": "best", "step": 4}) is None
    # A choice made before gap filling was a candidate is made again.
    pp.save_postprocessing(str(tmp_path), {k: v for k, v in choice.items() if k != "fill_gaps"},
                           {"kind": "best", "step": 4})
    assert pp.load_postprocessing(str(tmp_path), {"kind": "best", "step": 4}) is None


def burst_outputs(n=6):
    """Each clip holds one 40-frame event made of 4-frame bursts every 10 frames (a click train,
    labelled over its whole extent): the read-out fires on the bursts only, covering 40 % of the
    event, below PSDS's 70 % ground-truth coverage."""
    rng = np.random.default_rng(1)
    scores = np.full((n, T, K), 0.05)
    events = []
    for i in range(n):
        k, a = i % K, int(rng.integers(10, 50))
        for b in range(a, a + 40, 10):
            scores[i, b:b + 4, k] = 0.8
        events.append([(k, a * HOP, (a + 34) * HOP)])  # first burst's onset to last one's offset
    return {"clip_probs": np.full((n, K), 0.9), "frame_outputs": {"bursts": scores}}, events


def test_selection_fills_the_gaps_of_burst_events():
    outputs, events = burst_outputs()
    choice = pp.select_postprocessing(outputs, events, HOP, DUR, median_filters=(1, 5),
                                      thresholds=(0.3,), fill_gaps=(1, 5, 11))
    # Without filling no event is covered (PSDS1 0); gaps of 6 frames need a window of 7 or more.
    assert choice["candidates_fill_gaps"]["1"] == {"1": 0.0, "5": 0.0}
    assert choice["candidates_fill_gaps"]["5"] == {"1": 0.0, "5": 0.0}
    assert choice["fill_gaps"] == 11 and choice["val_psds1"] == pytest.approx(1.0)
    assert choice["val_event_f1"] == pytest.approx(1.0)
    # Where filling does not help (the spiky synthetic clips), it stays off: off wins ties.
    outputs, events = synthetic_outputs()
    choice = pp.select_postprocessing(outputs, events, HOP, DUR, median_filters=(1, 5), thresholds=(0.3,))
    assert choice["fill_gaps"] == 1 and choice["median_filter"] == 5
    assert set(choice["candidates_fill_gaps"]) == {"1", "11", "21", "31"}


def test_the_run_applies_at_test_what_validation_chose(tiny_run, loaded_run):
    """The tiny run's test report used exactly the stored choice: recomputing the localisation
    metrics from its test predictions with that choice gives the reported figures."""
    from twostep_jax.data.features import CLIP_SECONDS, HOP_S
    from twostep_jax.evaluation.score import evaluate_split, load_split
    from twostep_jax.train.predict import predict
    from twostep_jax.train.step import make_eval_step

    stored = json.loads((tiny_run.workdir / pp.POSTPROCESSING).read_text())
    assert stored["checkpoint"] == {"kind": loaded_run.kind, "step": loaded_run.step}
    report = tiny_run.report
    keys = ("readout", "median_filter", "fill_gaps", "threshold")
    assert {k: report["postprocessing"][k] for k in keys} == {k: stored[k] for k in keys}
    _, clips = load_split(loaded_run, "test")
    out = predict(make_eval_step(loaded_run.model), loaded_run.variables, clips, loaded_run.norm_stats, 8,
                  keep_frames=True)
    expected = localisation_metrics(list(pp.readout(out, stored["readout"])), clips.events, HOP_S,
                                    float(CLIP_SECONDS), threshold=stored["threshold"],
                                    median_filter=stored["median_filter"], fill=stored["fill_gaps"])
    assert report["localisation"] == pytest.approx(expected)
    raw = localisation_metrics(list(out["frame_probs"]), clips.events, HOP_S, float(CLIP_SECONDS), threshold=0.5)
    assert report["localisation_raw"] == pytest.approx(raw)
    # A threshold given by the user overrides the stored one, and only it.
    overridden, _ = evaluate_split(loaded_run, "test", threshold=0.25)
    assert overridden["postprocessing"]["threshold"] == 0.25
    assert overridden["postprocessing"]["readout"] == stored["readout"]
