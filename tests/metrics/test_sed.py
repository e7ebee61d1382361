"""Hand-computed toy cases for twostep_jax.metrics.sed.

Expected numbers are derived in the comments from the DCASE definitions
(sed_eval segment/event metrics, Bilen et al. PSDS); none are produced by the
code under test.
"""

import numpy as np
import pytest

from twostep_jax.metrics import sed as sm

HOP = 0.1  # a round hop makes frame times easy to reason about
DUR = 10.0


def probs_from_runs(n_frames, n_classes, runs):
    """[T, K] array, zero except ``value`` on frames a..b-1 of class k for (k, a, b, value)."""
    p = np.zeros((n_frames, n_classes))
    for k, a, b, v in runs:
        p[a:b, k] = v
    return p


# ---------------------------------------------------------------- decoding


def test_frame_probs_to_events_runs_and_strict_threshold():
    p = np.zeros((10, 2))
    p[:, 0] = [0, 0.6, 0.7, 0, 0, 0.9, 0.9, 0.9, 0, 0.5]
    # class 0: frames 1-2 -> [0.1, 0.3); frames 5-7 -> [0.5, 0.8); frame 9 equals
    # the threshold and is NOT active (strictly above); class 1 silent.
    events = sm.frame_probs_to_events(p, HOP, threshold=0.5)
    assert [(k, round(a, 9), round(b, 9)) for k, a, b in events] == [(0, 0.1, 0.3), (0, 0.5, 0.8)]


def test_frame_probs_to_events_sorted_across_classes_and_clipped():
    p = probs_from_runs(10, 3, [(2, 0, 3, 1.0), (0, 2, 10, 1.0), (1, 0, 3, 1.0)])
    # Sorted by (onset, offset, class): class 1 and 2 start at 0 with equal
    # offsets -> class order; class 0 runs to the last frame edge 1.0, clipped
    # to a 0.95 s clip (overhang of less than one frame is allowed).
    events = sm.frame_probs_to_events(p, HOP, 0.5, clip_duration=0.95)
    assert [(k, round(a, 9), round(b, 9)) for k, a, b in events] == [(1, 0.0, 0.3), (2, 0.0, 0.3), (0, 0.2, 0.95)]


def test_median_filter_removes_spike_and_fills_gap():
    p = np.zeros((12, 1))
    p[[1], 0] = 1.0          # isolated spike -> removed by a 3-frame median
    p[4:11, 0] = 1.0
    p[7, 0] = 0.0            # one-frame dip inside a run -> filled
    raw = sm.frame_probs_to_events(p, HOP, 0.5)
    assert len(raw) == 3
    smooth = sm.frame_probs_to_events(p, HOP, 0.5, median_filter=3)
    assert [(k, round(a, 9), round(b, 9)) for k, a, b in smooth] == [(0, 0.4, 1.1)]


def test_fill_gaps_merges_short_gaps_only_and_never_shortens():
    p = np.zeros((20, 1))
    p[[0, 1, 4, 5, 9, 10], 0] = 1.0  # gap of 2 frames (2-3), then of 3 frames (6-8)
    p[16, 0] = 0.7                   # lone detection after a gap of 5 (11-15), then the edge
    events = lambda q, **kw: [(k, round(a, 9), round(b, 9)) for k, a, b in
                              sm.frame_probs_to_events(q, HOP, 0.5, **kw)]
    assert len(events(p)) == 4
    # A 3-frame window fills gaps of fewer than 3 frames: 0-5 merge, 9-10 and 15 stay apart.
    assert events(p, fill=3) == [(0, 0.0, 0.6), (0, 0.9, 1.1), (0, 1.6, 1.7)]
    # 5 frames fill the 3-frame gap too; the gap of 5 and the dip at the clip's edge remain.
    assert events(p, fill=5) == [(0, 0.0, 1.1), (0, 1.6, 1.7)]
    assert events(p, fill=7) == [(0, 0.0, 1.7)]
    closed = sm.fill_gaps(p, 7)
    assert np.all(closed >= p) and closed[2, 0] == closed[7, 0] == 1.0 and closed[18, 0] == 0.0
    # Filling, then the median filter: the lone frame is removed, the merged run kept.
    assert events(p, fill=5, median_filter=3) == [(0, 0.0, 1.1)]
    # It commutes with thresholding (what lets PSDS use it): decisions at every threshold of the
    # filled scores are the gap-filled decisions of the raw scores.
    q = np.random.default_rng(0).uniform(0, 1, (50, 3))
    for t in (0.2, 0.5, 0.8):
        np.testing.assert_array_equal(sm.fill_gaps(q, 7) > t, sm.fill_gaps((q > t).astype(float), 7) > 0.5)
    with pytest.raises(ValueError, match="fill_gaps must be a positive odd"):
        sm.fill_gaps(p, 4)


def test_psds_counts_a_burst_event_only_once_its_gaps_are_filled():
    # One 3 s event made of 0.2 s bursts every 0.5 s: detections cover 40 % (< GTC 0.7).
    p = np.zeros((100, 1))
    for b in range(20, 50, 5):
        p[b:b + 2, 0] = 0.9
    refs = [[(0, 2.0, 4.7)]]
    assert sm.psds([p], refs, HOP, DUR) == 0.0
    assert sm.psds([p], refs, HOP, DUR, fill=5) == pytest.approx(1.0)
    # The gap filling creates no detection outside the event: the operating point that finds
    # it has no false positive (the only false positive is "everything active", threshold 0).
    roc = sm.psd_roc([p], refs, HOP, DUR, fill=5)
    assert any(tp == 1 and fp == 0 for tp, fp in zip(roc.tps[0], roc.fps[0]))
    assert np.sum(roc.fps[0] > 0) == 1


@pytest.mark.parametrize(
    "probs, kwargs, match",
    [
        (np.zeros(10), {}, r"shape \[T, K\]"),
        (np.full((5, 2), 1.2), {}, r"\[0, 1\]"),
        (np.full((5, 2), np.nan), {}, "NaN"),
        (np.zeros((5, 2)), {"median_filter": 2}, "odd"),
        (np.zeros((5, 2)), {"threshold": 1.0}, "threshold"),
        (np.zeros((20, 2)), {"clip_duration": 1.0}, "beyond clip_duration"),
    ],
)
def test_frame_probs_to_events_rejects_bad_input(probs, kwargs, match):
    with pytest.raises(ValueError, match=match):
        sm.frame_probs_to_events(probs, HOP, **kwargs)


def test_float32_rounding_above_one_is_clipped_not_rejected():
    # A softmax-weighted sum of sigmoids in float32 can come out at 1 + 1 ulp.
    p = np.zeros((10, 1), dtype=np.float32)
    p[2:5, 0] = np.nextafter(np.float32(1.0), np.float32(2.0))
    assert p.max() > 1.0
    events = sm.frame_probs_to_events(p, HOP, 0.5)
    assert [(k, round(a, 9), round(b, 9)) for k, a, b in events] == [(0, 0.2, 0.5)]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        sm.frame_probs_to_events(p + 0.01, HOP, 0.5)


@pytest.mark.parametrize(
    "event, match",
    [
        ((3, 0.5, 1.0), r"class index 3 out of range \[0, 2\)"),
        ((0, 1.0, 1.0), "onset < offset"),
        ((0, 9.0, 10.5), "beyond clip_duration"),
        ((0.5, 1.0, 2.0), "integer"),
        ((0, 1.0), r"\(class_index, onset_s, offset_s\)"),
    ],
)
def test_event_validation(event, match):
    with pytest.raises(ValueError, match=match):
        sm.segment_based_metrics([[event]], [[]], n_classes=2, clip_duration=DUR)


def test_clip_count_mismatch():
    with pytest.raises(ValueError, match="1 reference clips but 2 estimated"):
        sm.event_based_metrics([[]], [[], []], n_classes=2)


# ---------------------------------------------------------------- segment-based


def test_segment_perfect_detection():
    ref = [[(0, 0.5, 2.5), (1, 3.0, 5.0)]]
    m = sm.segment_based_metrics(ref, ref, n_classes=2, clip_duration=DUR)
    assert (m["f1"], m["error_rate"], m["macro_f1"]) == (1.0, 0.0, 1.0)
    # [0.5, 2.5) touches segments 0,1,2; [3.0, 5.0) touches 3,4 -> 5 active (segment, class) pairs.
    assert (m["n_ref"], m["n_tp"]) == (5, 5)


def test_segment_all_missed():
    m = sm.segment_based_metrics([[(0, 0.5, 2.5)]], [[]], n_classes=2, clip_duration=DUR)
    # 3 reference segments, no system output: D = 3, ER = 3/3 = 1, F1 = 0.
    assert (m["f1"], m["error_rate"], m["deletion_rate"], m["precision"]) == (0.0, 1.0, 1.0, 0.0)


def test_segment_substitution_insertion_and_classwise():
    ref = [[(0, 0.5, 2.5)]]                            # class 0 in segments 0, 1, 2
    est = [[(1, 0.2, 1.5), (0, 2.1, 2.4), (0, 5.0, 6.0)]]
    # est class 1 -> segments 0, 1; class 0 -> segment 2 and segment 5 only
    # (floor(5.0) = 5, ceil(6.0) = 6: the end is exclusive).
    # seg 0: Nref 1 (c0), Nsys 1 (c1), TP 0 -> S = 1
    # seg 1: same                               -> S = 1
    # seg 2: c0 vs c0                           -> TP = 1
    # seg 5: Nref 0, Nsys 1                     -> I = 1
    # Nref = 3, Nsys = 4, TP = 1, S = 2, D = 0, I = 1 -> ER = 3/3 = 1.0
    # P = 1/4, R = 1/3, F = 2 PR / (P + R) = (1/6) / (7/12) = 2/7.
    m = sm.segment_based_metrics(ref, est, n_classes=2, clip_duration=DUR)
    assert m["error_rate"] == pytest.approx(1.0)
    assert m["substitution_rate"] == pytest.approx(2 / 3)
    assert m["insertion_rate"] == pytest.approx(1 / 3)
    assert m["deletion_rate"] == 0.0
    assert (m["precision"], m["recall"]) == (pytest.approx(0.25), pytest.approx(1 / 3))
    assert m["f1"] == pytest.approx(2 / 7)
    # class 0: TP 1 (seg 2), FP 1 (seg 5), FN 2 (segs 0, 1): P 1/2, R 1/3, F = 0.4.
    # class 1 has no reference activity -> undefined, left out of the macro mean.
    assert m["per_class_f1"][0] == pytest.approx(0.4)
    assert np.isnan(m["per_class_f1"][1])
    assert m["macro_f1"] == pytest.approx(0.4)


@pytest.mark.parametrize(
    "event, segments",
    [
        ((0, 1.0, 2.0), 1),      # exactly one segment: [1, 2) touches segment 1 only
        ((0, 0.999, 2.001), 3),  # spills into segments 0 and 2
        ((0, 9.5, 10.0), 1),     # ends at the clip end: last segment only
    ],
)
def test_segment_boundaries(event, segments):
    m = sm.segment_based_metrics([[event]], [[event]], n_classes=1, clip_duration=DUR)
    assert m["n_ref"] == segments


def test_segment_float_noise_at_segment_edge():
    # With 0.1 s segments, an offset computed as 0.1 + 0.2 = 0.30000000000000004
    # gives 0.30000000000000004 / 0.1 = 3.0000000000000004, and ceil() would
    # push the event into segment 3; times are rounded to 1 µs first, so it
    # touches segment 2 only, like the reference [0.2, 0.3).
    end = 0.1 + 0.2
    assert end / 0.1 > 3.0
    m = sm.segment_based_metrics([[(0, 0.2, 0.3)]], [[(0, 0.2, end)]], n_classes=1, clip_duration=DUR,
                                 segment_s=0.1)
    assert (m["n_ref"], m["n_sys"], m["f1"]) == (1, 1, 1.0)


def test_segment_accumulates_over_clips():
    ref = [[(0, 0.0, 1.0)], [(0, 0.0, 2.0)]]
    est = [[(0, 0.0, 1.0)], []]
    # clip 1: 1 TP; clip 2: 2 deletions -> Nref 3, TP 1, D 2: ER 2/3, R 1/3, P 1, F 0.5.
    m = sm.segment_based_metrics(ref, est, n_classes=1, clip_duration=DUR)
    assert (m["error_rate"], m["recall"], m["precision"], m["f1"]) == (
        pytest.approx(2 / 3), pytest.approx(1 / 3), 1.0, pytest.approx(0.5))


# ---------------------------------------------------------------- event-based


def test_event_perfect_detection():
    ref = [[(0, 0.5, 2.5), (1, 3.0, 5.0)], [(1, 1.0, 2.0)]]
    m = sm.event_based_metrics(ref, ref, n_classes=2)
    assert (m["f1"], m["error_rate"], m["macro_f1"], m["n_tp"]) == (1.0, 0.0, 1.0, 3)


def test_event_all_missed():
    m = sm.event_based_metrics([[(0, 0.5, 2.5), (1, 3.0, 5.0)]], [[]], n_classes=2)
    # D = 2, ER = 2/2 = 1, F1 = 0.
    assert (m["f1"], m["error_rate"], m["deletion_rate"]) == (0.0, 1.0, 1.0)


def test_event_one_insertion():
    ref = [[(0, 1.0, 3.0)]]
    est = [[(0, 1.0, 3.0), (1, 5.0, 6.0)]]
    # TP 1; the extra class-1 event has no unmatched reference to substitute
    # -> I = 1, ER = 1/1 = 1; P = 1/2, R = 1, F1 = 2/3.
    m = sm.event_based_metrics(ref, est, n_classes=2)
    assert (m["error_rate"], m["insertion_rate"], m["substitution_rate"]) == (1.0, 1.0, 0.0)
    assert (m["precision"], m["recall"], m["f1"]) == (0.5, 1.0, pytest.approx(2 / 3))


def test_event_substitution():
    ref = [[(0, 1.0, 3.0)]]
    est = [[(1, 1.05, 3.1)]]
    # Wrong class, timing within collars -> S = 1, D = I = 0, ER = 1, F1 = 0.
    m = sm.event_based_metrics(ref, est, n_classes=2)
    assert (m["substitution_rate"], m["deletion_rate"], m["insertion_rate"], m["f1"]) == (1.0, 0.0, 0.0, 0.0)


@pytest.mark.parametrize(
    "est_onset, hit",
    [(1.19, True), (1.2, True), (1.21, False), (0.81, True), (0.79, False)],
)
def test_event_onset_collar_200ms(est_onset, hit):
    # |Δonset| <= 0.2 s (inclusive); offsets identical.
    m = sm.event_based_metrics([[(0, 1.0, 3.0)]], [[(0, est_onset, 3.0)]], n_classes=1)
    assert m["n_tp"] == int(hit)
    # A same-class miss is a deletion plus an insertion, not a substitution -> ER 2.
    assert m["error_rate"] == (0.0 if hit else 2.0)


@pytest.mark.parametrize(
    "ref, est_offset, hit",
    [
        # 2.0 s reference: offset collar max(0.2, 0.2 * 2.0) = 0.4 s.
        ((0, 1.0, 3.0), 3.39, True),
        ((0, 1.0, 3.0), 2.61, True),
        ((0, 1.0, 3.0), 3.41, False),
        # 0.5 s reference: 20 % is 0.1 s < 0.2 s, so the collar stays 0.2 s.
        ((0, 1.0, 1.5), 1.69, True),
        ((0, 1.0, 1.5), 1.71, False),
    ],
)
def test_event_offset_collar_20_percent(ref, est_offset, hit):
    m = sm.event_based_metrics([[ref]], [[(0, ref[1], est_offset)]], n_classes=1)
    assert m["n_tp"] == int(hit)
    # Without offset evaluation only the (identical) onset counts.
    assert sm.event_based_metrics([[ref]], [[(0, ref[1], est_offset)]], n_classes=1,
                                  evaluate_offset=False)["n_tp"] == 1


def test_event_matching_is_maximum_not_greedy():
    # R1 = [1.0, 3.0) (offset collar 0.4), R2 = [1.1, 3.0) (offset collar 0.38).
    # Ea = [1.05, 3.0) matches both; Eb = [1.15, 3.39) matches R1 only
    # (|3.39 - 3.0| = 0.39 > 0.38 for R2). A greedy pass in time order pairs
    # R1-Ea and leaves R2 unmatched (1 TP); the maximum matching R1-Eb, R2-Ea
    # finds 2 TPs -> F1 1, ER 0.
    ref = [[(0, 1.0, 3.0), (0, 1.1, 3.0)]]
    est = [[(0, 1.05, 3.0), (0, 1.15, 3.39)]]
    m = sm.event_based_metrics(ref, est, n_classes=1)
    assert (m["n_tp"], m["f1"], m["error_rate"]) == (2, 1.0, 0.0)


def test_event_macro_f1_over_classes_with_references():
    ref = [[(0, 1.0, 2.0), (1, 4.0, 5.0)], [(1, 1.0, 2.0)]]
    est = [[(0, 1.0, 2.0), (2, 7.0, 8.0)], [(1, 1.0, 2.0)]]
    # class 0: 1/1 -> F 1; class 1: TP 1 of 2 refs, 1 sys -> P 1, R 1/2, F 2/3;
    # class 2: no reference -> excluded. macro = (1 + 2/3) / 2 = 5/6.
    # micro: TP 2, Nref 3, Nsys 3 -> F 2/3; leftovers: ref (1, 4-5) vs est
    # (2, 7-8) fail the onset collar -> D 1, I 1, ER 2/3.
    m = sm.event_based_metrics(ref, est, n_classes=3)
    assert m["macro_f1"] == pytest.approx(5 / 6)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["error_rate"] == pytest.approx(2 / 3)
    assert np.isnan(m["per_class_f1"][2])


# ---------------------------------------------------------------- PSDS


def test_psds_perfect_is_one_and_silence_is_zero():
    # GT [0.5, 2.5); frames 5..24 cover exactly [0.5, 2.5) -> DTC 1, GTC 1 at
    # every threshold, no FP: each class ROC is 1 from eFPR 0 -> PSDS 1.
    ref = [[(0, 0.5, 2.5), (1, 3.0, 4.0)]]
    perfect = probs_from_runs(100, 2, [(0, 5, 25, 1.0), (1, 30, 40, 1.0)])
    assert sm.psds([perfect], ref, HOP, DUR) == 1.0
    assert sm.psds([np.zeros((100, 2))], ref, HOP, DUR) == 0.0


def test_psds_dtc_and_gtc_counts():
    # One class, GT A = [1.0, 2.0), GT B = [4.0, 6.0) (2 s).
    ref = [[(0, 1.0, 2.0), (0, 4.0, 6.0)]]
    p = np.zeros((100, 1))
    p[10:30, 0] = 0.9   # [1.0, 3.0): 1.0 s of 2.0 on GT -> 0.5 < DTC 0.7 -> FP, A not hit
    p[10:24, 0] = 0.95  # at θ > 0.9 only [1.0, 2.4): 1.0/1.4 = 0.714 >= 0.7 -> relevant, A covered 1.0/1.0 -> TP
    p[40:48, 0] = 0.8   # [4.0, 4.8) and
    p[50:56, 0] = 0.8   # [5.0, 5.6): both inside B -> relevant; coverage 1.4/2 = 0.7 >= GTC -> B TP
    roc = sm.psd_roc([p], ref, HOP, DUR, thresholds=[0.5, 0.92, 0.97])
    # θ = 0.5: A-detection [1.0, 3.0) fails DTC (1 FP), A missed; B hit -> TP 1, FP 1
    # θ = 0.92: only [1.0, 2.4) -> TP 1 (A), FP 0; B's detections are gone
    # θ = 0.97: nothing -> TP 0, FP 0
    assert roc.tps.tolist() == [[1, 1, 0]]
    assert roc.fps.tolist() == [[1, 0, 0]]
    assert roc.n_ref.tolist() == [2]


def test_psds_gtc_needs_enough_coverage():
    ref = [[(0, 1.0, 3.0)]]
    one = probs_from_runs(100, 1, [(0, 10, 23, 1.0)])  # [1.0, 2.3): 1.3/2 = 0.65 < 0.7 -> no TP, but no FP either
    roc = sm.psd_roc([one], ref, HOP, DUR, thresholds=[0.5])
    assert (roc.tps.tolist(), roc.fps.tolist()) == ([[0]], [[0]])


def test_psds_hand_computed_curve():
    # One 36 s clip = 0.01 h, so each FP is an eFPR of 100 / h; max_efpr = 200.
    # class 0: GT [1, 2) scored 0.4; an FP region [5, 6) scored 0.6.
    #   θ = 0.3: TP 1, FP 1 -> (100, 1); θ = 0.5: TP 0, FP 1 -> (100, 0);
    #   θ = 0.7, 0.9: (0, 0).  Staircase: TPR 0 on [0, 100), 1 from 100.
    # class 1: GT [5, 6) scored 0.8 -> TP at θ <= 0.7, never an FP -> TPR 1 from 0.
    # mean TPR: 0.5 on [0, 100), 1 on [100, 200]; std (ddof 0): 0.5, then 0.
    ref = [[(0, 1.0, 2.0), (1, 5.0, 6.0)]]
    p = probs_from_runs(360, 2, [(0, 10, 20, 0.4), (0, 50, 60, 0.6), (1, 50, 60, 0.8)])
    kw = dict(hop_s=HOP, clip_duration=36.0, thresholds=[0.3, 0.5, 0.7, 0.9])
    # alpha_st = 0: (0.5 * 100 + 1 * 100) / 200 = 0.75
    assert sm.psds([p], ref, max_efpr=200.0, alpha_st=0.0, **kw) == pytest.approx(0.75)
    # alpha_st = 1: etpr = max(0, 0.5 - 0.5) = 0 on [0, 100), 1 after -> 100 / 200 = 0.5
    assert sm.psds([p], ref, max_efpr=200.0, alpha_st=1.0, **kw) == pytest.approx(0.5)
    # max_efpr = 100 (scenario 1): only [0, 100) counts -> 0.5 / 0.0
    assert sm.psds([p], ref, max_efpr=100.0, alpha_st=0.0, **kw) == pytest.approx(0.5)
    assert sm.psds([p], ref, max_efpr=100.0, alpha_st=1.0, **kw) == pytest.approx(0.0)
    roc = sm.psd_roc([p], ref, max_efpr=200.0, alpha_st=1.0, **kw)
    assert roc.efpr.tolist() == [0.0, 100.0, 200.0]
    assert roc.etpr.tolist() == [0.0, 1.0, 1.0]


def test_exact_psds_finds_the_operating_point_between_grid_thresholds():
    # One 36 s clip (0.01 h: one FP = 100 / h), one class. GT [1, 2) scored 0.508,
    # a false alarm [5, 6) scored 0.502: both lie between the grid's neighbours
    # 0.49 and 0.51. Only θ in [0.502, 0.508) detects the event without the alarm.
    ref = [[(0, 1.0, 2.0)]]
    p = probs_from_runs(360, 1, [(0, 10, 20, 0.508), (0, 50, 60, 0.502)])
    kw = dict(hop_s=HOP, clip_duration=36.0, max_efpr=100.0, alpha_st=0.0)
    # Exact: operating points (TPR, eFPR) = (1, 100) below 0.502, (1, 0) at θ = 0.502,
    # (0, 0) from 0.508 -> TPR 1 from eFPR 0 -> PSDS 1.
    assert sm.psds([p], ref, **kw) == pytest.approx(1.0)
    # Grid: at θ <= 0.49 both are detected (TPR 1 at eFPR 100 = max_efpr), at θ >= 0.51
    # nothing -> TPR 0 on [0, 100) -> PSDS 0.
    assert sm.psds([p], ref, thresholds=sm.DEFAULT_PSDS_THRESHOLDS, **kw) == pytest.approx(0.0)
    roc = sm.psd_roc([p], ref, **kw)
    # Class 0's distinct scores (-1 = everything active) and the counts there.
    assert roc.thresholds[0].tolist() == [-1.0, 0.0, 0.502, 0.508]
    # θ = -1: one run over the whole clip: 1 s of 36 on the event fails the DTC -> FP 1, and
    # an event covered only by irrelevant detections is missed -> TP 0. θ = 0: two runs, the
    # event's (TP) and the alarm (FP). θ = 0.502: the event's run only. θ = 0.508: nothing.
    assert roc.tps[0].tolist() == [0, 1, 1, 0]
    assert roc.fps[0].tolist() == [1, 1, 0, 0]


def test_exact_psds_counts_false_alarms_of_classes_without_references():
    # Class 1 has no reference in the clip: every run above θ is an FP. Its scores
    # 0.2 on [0, 1), 0.6 on [2, 3), 0.4 on [3, 4), 0 elsewhere: θ < 0 one run (the whole
    # clip); θ in [0, 0.2) runs [0, 1) and [2, 4) -> 2; θ in [0.2, 0.4) run [2, 4) and
    # θ in [0.4, 0.6) run [2, 3) -> 1 (0.4 changes a run, not the count); θ >= 0.6: none.
    ref = [[(0, 5.0, 6.0)]]
    p = probs_from_runs(100, 2, [(0, 50, 60, 0.9), (1, 0, 10, 0.2), (1, 20, 30, 0.6),
                                 (1, 30, 40, 0.4)])
    roc = sm.psd_roc([p], ref, HOP, DUR)
    assert roc.thresholds[1].tolist() == [-1.0, 0.0, 0.2, 0.6]
    assert roc.fps[1].tolist() == [1, 2, 1, 0]
    assert roc.tps[1].tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize("seed", [0, 1])
def test_exact_psds_equals_a_grid_holding_every_score(seed):
    # Independent check: the grid routine evaluated at every distinct score (+ 0, below
    # every score here) reaches every operating point, so it must equal the exact value;
    # the default 50-point grid can only be lower (alpha_st = 0: fewer points, lower staircase).
    rng = np.random.default_rng(seed)
    probs, refs = [], []
    for _ in range(6):
        p = np.clip(rng.beta(0.6, 2.0, (100, 4)) * 0.9 + 0.05, 0.0, 0.99)
        ev = []
        for k in range(4):
            if rng.random() < 0.6:
                a = int(rng.integers(0, 80))
                b = a + int(rng.integers(5, 20))
                p[a:b, k] = np.clip(p[a:b, k] + rng.uniform(0.1, 0.6), 0.0, 0.99)
                ev.append((k, a * HOP, b * HOP))
        probs.append(p)
        refs.append(ev)
    every = np.r_[0.0, np.unique(np.concatenate([p.ravel() for p in probs]))]
    for alpha_st in (0.0, 1.0):
        for mf in (1, 3):
            exact = sm.psds(probs, refs, HOP, DUR, alpha_st=alpha_st, median_filter=mf)
            full_grid = sm.psds(probs, refs, HOP, DUR, alpha_st=alpha_st, median_filter=mf,
                                thresholds=every[every < 1.0])
            assert exact == pytest.approx(full_grid, abs=1e-12)
            if alpha_st == 0.0:
                coarse = sm.psds(probs, refs, HOP, DUR, alpha_st=0.0, median_filter=mf,
                                 thresholds=sm.DEFAULT_PSDS_THRESHOLDS)
                assert coarse <= exact + 1e-12


def test_psds_roc_keeps_best_tpr_when_lower_thresholds_merge_detections():
    # One 36 s clip (0.01 h, one FP = 100 / h), GT [1, 2) scored 0.8 with a
    # 0.4 tail on [2, 4). θ = 0.5: [1, 2) -> TP, no FP -> (0, 1).
    # θ = 0.3: one merged detection [1, 4) covers the GT for 1/3 < DTC -> FP,
    # and the GT is lost -> (100, 0). The ROC takes the best TPR reachable at
    # each eFPR (running max), so it stays 1 up to max_efpr: PSDS = 1 (not 0.5).
    ref = [[(0, 1.0, 2.0)]]
    p = probs_from_runs(360, 1, [(0, 10, 20, 0.8), (0, 20, 40, 0.4)])
    roc = sm.psd_roc([p], ref, HOP, 36.0, thresholds=[0.3, 0.5], max_efpr=200.0)
    assert (roc.tps.tolist(), roc.fps.tolist()) == ([[0, 1]], [[1, 0]])
    assert sm.psds([p], ref, HOP, 36.0, thresholds=[0.3, 0.5], max_efpr=200.0) == 1.0


@pytest.mark.parametrize("n_false_alarms, expected", [(0, 1.0), (1, 0.64), (2, 0.28), (3, 0.0)])
def test_psds_false_alarms_scoring_above_the_events(n_false_alarms, expected):
    # 10 clips of 10 s = 1/36 h: one FP is an eFPR of 36 / h. Every clip has a
    # GT [0.5, 2.5) scored 0.6; n clips also have a false alarm scored 0.7.
    #   θ < 0.6: TPR 1, eFPR 36 n;  0.6 <= θ < 0.7: TPR 0, eFPR 36 n;  θ >= 0.7: (0, 0).
    # Staircase: TPR 0 below 36 n, 1 from 36 n -> PSDS = (100 - 36 n) / 100
    # (0 once 36 n > max_efpr = 100). Single class, so alpha_st has no effect.
    ref = [[(0, 0.5, 2.5)]] * 10
    clean = probs_from_runs(100, 1, [(0, 5, 25, 0.6)])
    alarm = probs_from_runs(100, 1, [(0, 5, 25, 0.6), (0, 60, 70, 0.7)])
    probs = [alarm] * n_false_alarms + [clean] * (10 - n_false_alarms)
    assert sm.psds(probs, ref, HOP, DUR) == pytest.approx(expected)


def test_psds_has_no_cross_trigger_arguments():
    with pytest.raises(TypeError, match="alpha_ct"):
        sm.psds([np.zeros((10, 1))], [[(0, 0.1, 0.5)]], HOP, DUR, alpha_ct=0.5)


# ---------------------------------------------------------------- the flat dict


def test_localisation_metrics_perfect_on_paper_grid():
    hop = 1024 / 32000  # 0.032 s, 311 frames in a 10 s clip
    ref = [[(6, 0.5, 2.5), (2, 3.0, 5.0), (6, 5.5, 7.5)]]
    centres = (np.arange(311) + 0.5) * hop
    p = np.zeros((311, 8))
    for k, on, off in ref[0]:
        p[(centres >= on) & (centres < off), k] = 0.9
    # Detections are the frames whose centre is inside the event, e.g. [0.512,
    # 2.496) for [0.5, 2.5): 12 ms / 4 ms off, inside the collars, same 1 s
    # segments, 99 % GT coverage -> all scores perfect.
    m = sm.localisation_metrics([p], ref, hop, DUR)
    assert m["segment_f1"] == 1.0 and m["segment_er"] == 0.0
    assert m["event_f1"] == 1.0 and m["event_er"] == 0.0 and m["event_onset_f1"] == 1.0
    assert m["psds1"] == 1.0 and m["psds1_alpha_st0"] == 1.0
    assert (m["n_clips"], m["n_ref_events"], m["n_est_events"]) == (1, 3, 3)


def test_localisation_metrics_psds_without_the_class_penalty():
    # Class 0 found perfectly, class 1 missed: mean TPR 0.5, std 0.5 -> PSDS1 0, alpha_st=0 0.5.
    ref = [[(0, 1.0, 1.6), (1, 3.0, 3.6)]]
    p = probs_from_runs(100, 2, [(0, 10, 16, 1.0)])
    m = sm.localisation_metrics([p], ref, HOP, DUR)
    assert m["psds1"] == 0.0
    assert m["psds1_alpha_st0"] == pytest.approx(0.5)


def test_localisation_metrics_shifted_events_only_fail_event_metrics():
    # Shift every detection by 0.3 s (> 200 ms onset collar) but stay within
    # the same 1 s segments: segment F1 stays 1, event F1 drops to 0.
    ref = [[(0, 1.0, 1.6), (1, 3.0, 3.6)]]
    p = probs_from_runs(100, 2, [(0, 13, 16, 1.0), (1, 33, 36, 1.0)])  # [1.3, 1.6), [3.3, 3.6)
    m = sm.localisation_metrics([p], ref, HOP, DUR)
    assert m["segment_f1"] == 1.0
    assert m["event_f1"] == 0.0
    assert m["event_er"] == 2.0  # each class: one deletion + one insertion, Nref = 2 -> 4/2


def test_class_wise_localisation_hand_computed():
    # Two 10 s clips (20 s: one false alarm = 180 per hour, outside PSDS1's 100/h range).
    # Class 0: both events found; class 1: never scored; class 2: one false alarm, no reference.
    ref = [[(0, 0.5, 1.0)], [(0, 1.0, 1.4), (1, 2.0, 2.4)]]
    probs = [probs_from_runs(100, 3, [(0, 5, 10, 0.9)]),
             probs_from_runs(100, 3, [(0, 10, 14, 0.8), (2, 50, 54, 0.7)])]
    m = sm.class_wise_localisation(probs, ref, HOP, DUR)
    assert m["n_ref"] == [2, 1, 0]
    assert m["median_duration_s"] == pytest.approx([0.45, 0.4, None])
    assert m["n_est"] == [2, 0, 1]
    assert m["event_f1"] == [1.0, 0.0, None]
    assert m["max_tpr"] == [1.0, 0.0, None]
    # A false alarm of class 0 scoring above both events: in range only when the range allows
    # one false alarm (180/h), and then the class still reaches every event.
    probs[1][30:32, 0] = 0.95
    assert sm.class_wise_localisation(probs, ref, HOP, DUR)["max_tpr"][0] == 0.0
    assert sm.class_wise_localisation(probs, ref, HOP, DUR, max_efpr=200.0)["max_tpr"][0] == 1.0
    # The post-processing is applied before counting: a 5-frame median filter removes the
    # 2-frame false alarm, and the 4- and 5-frame events survive it.
    assert sm.class_wise_localisation(probs, ref, HOP, DUR, median_filter=5)["max_tpr"][0] == 1.0


def test_localisation_report_is_both_breakdowns_from_one_roc():
    # The overall figures and the per-class breakdown from one decoding: each equals the
    # function that computes it alone, with and without post-processing.
    ref = [[(0, 0.5, 1.0)], [(0, 1.0, 1.4), (1, 2.0, 2.4)]]
    probs = [probs_from_runs(100, 3, [(0, 5, 10, 0.9), (1, 40, 43, 0.6)]),
             probs_from_runs(100, 3, [(0, 10, 14, 0.8), (1, 20, 23, 0.55), (2, 50, 54, 0.7)])]
    for kw in ({}, {"threshold": 0.6, "median_filter": 3, "fill": 3}):
        overall, per_class = sm.localisation_report(probs, ref, HOP, DUR, **kw)
        assert overall == sm.localisation_metrics(probs, ref, HOP, DUR, **kw)
        assert per_class == sm.class_wise_localisation(probs, ref, HOP, DUR, **kw)


def test_psd_roc_with_alpha_st_resummarises_the_same_counts():
    # Class 0 found at every threshold below 0.9, class 1 never: TPRs 1 and 0, so the mean is
    # 0.5 and the std 0.5 -> PSDS 0.5 at alpha_st 0 and 0 at alpha_st 1 (no false alarm).
    ref = [[(0, 0.5, 1.0), (1, 2.0, 2.4)]]
    probs = [probs_from_runs(100, 2, [(0, 5, 10, 0.9)])]
    roc = sm.psd_roc(probs, ref, HOP, DUR)
    assert roc.area() == 0.0
    assert roc.with_alpha_st(0.0).area() == pytest.approx(0.5)
    assert roc.with_alpha_st(0.0).area() == sm.psds(probs, ref, HOP, DUR, alpha_st=0.0)
    assert roc.with_alpha_st(0.0).tps is roc.tps  # counted once
    with pytest.raises(ValueError, match="alpha_st"):
        roc.with_alpha_st(-1.0)
