"""Sound event localisation metrics from frame-level class activity (numpy only).

The paper (2APAE) reports clip-level metrics only; our datasets keep strong
labels, so evaluation also measures *where in time* each class is detected.
This module re-implements the DCASE definitions without depending on
``sed_eval`` / ``sed_scores_eval``:

* :func:`segment_based_metrics` -- sed_eval ``SegmentBasedMetrics`` (1 s
  segments, overall F1/P/R and ER with per-segment substitutions, class-wise F1).
* :func:`event_based_metrics` -- sed_eval ``EventBasedMetrics`` with
  ``event_matching_type='optimal'`` (200 ms onset collar, offset collar
  ``max(200 ms, 20 % of the reference length)``).
* :func:`psds` / :func:`psd_roc` -- intersection-based PSDS (Bilen et al.,
  ICASSP 2020) as computed by ``sed_scores_eval`` (Ebbers et al., ICASSP 2022):
  threshold-independent, evaluated at every distinct score value (or, as an
  option, on a grid of decision thresholds).
* :func:`localisation_metrics` -- the flat dict ``evaluate.py`` reports;
  :func:`class_wise_localisation` its per-class breakdown; :func:`localisation_report` both
  from one decoding and one PSD-ROC.

Conventions
-----------
Time grid: ``frame_probs`` has shape ``[T, K]`` (frames, classes); frame ``i``
covers the half-open interval ``[i * hop_s, (i + 1) * hop_s)`` seconds (for
the paper's features ``hop_s = 1024 / 32000 = 0.032``, ``T = 311``). A run of
frames ``a .. b-1`` whose probability is strictly above the threshold becomes
the event ``[a * hop_s, b * hop_s)``. When a clip duration is given, frame
edges are clipped to it; the grid may overhang the clip by less than one frame
(centre-padded STFTs), anything more is an error.

Events: ``(class_index, onset_s, offset_s)`` tuples with
``0 <= onset < offset <= clip_duration``; one list per clip.

Times are compared after rounding to 1 µs (as ``sed_scores_eval``'s
``time_decimals=6``), so float noise in frame-edge times (``125 * 0.032`` is
not exactly ``4.0``) cannot flip a collar, segment or DTC/GTC decision.

Documented deviations from the reference libraries (only matter for corner
cases; identical results otherwise -- see tests):

* Class-averaged ("macro") F1 averages over classes with at least one
  reference event; sed_eval also averages in ``F = 0`` for classes absent from
  the reference. PSDS likewise averages over classes with reference events;
  sed_scores_eval counts a class without references as ``TPR = 0``.
* Error rates are ``nan`` when there are no reference events (sed_eval divides
  by machine epsilon).
* Within a clip events are processed sorted by ``(onset, offset, class)``;
  sed_eval uses input order, which only affects which leftover pairs the greedy
  substitution count picks.
* PSDS is exact by default (``thresholds=None``): every distinct score value
  is an operating point, as in sed_scores_eval. A threshold grid
  (``DEFAULT_PSDS_THRESHOLDS``, 50 values) is kept as an option; it reaches
  only the operating points on the grid, so with ``alpha_st = 0`` it is a
  lower bound of the exact value. Only scenario-1-style scoring is offered:
  there is no cross-trigger term (``alpha_ct = 0``), so PSDS scenario 2 is
  out of scope.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np
from scipy.ndimage import grey_closing as _ndimage_grey_closing
from scipy.ndimage import median_filter as _ndimage_median_filter
from scipy.optimize import linear_sum_assignment

Event = tuple[int, float, float]

DEFAULT_PSDS_THRESHOLDS = np.linspace(0.01, 0.99, 50)
_TIME_DECIMALS = 6
# Softmax-weighted sums of sigmoids computed in float32 can land a few ulps
# outside [0, 1]; such values are clipped, anything further out is an error.
_PROB_TOLERANCE = 1e-5
_SECONDS_PER_HOUR = 3600.0

__all__ = [
    "DEFAULT_PSDS_THRESHOLDS",
    "PSDROC",
    "class_wise_localisation",
    "event_based_metrics",
    "fill_gaps",
    "frame_probs_to_events",
    "localisation_metrics",
    "localisation_report",
    "median_smooth",
    "smooth_scores",
    "psd_roc",
    "psds",
    "segment_based_metrics",
]


# --------------------------------------------------------------------------
# Input validation


def _round_t(x):
    return np.round(x, _TIME_DECIMALS)


def _check_positive(value: float, name: str) -> float:
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number; got {value!r}")
    return value


def _check_unit_interval(value: float, name: str, *, closed_right: bool) -> float:
    value = float(value)
    ok = 0.0 <= value <= 1.0 if closed_right else 0.0 <= value < 1.0
    if not ok:
        bound = "[0, 1]" if closed_right else "[0, 1)"
        raise ValueError(f"{name} must lie in {bound}; got {value!r}")
    return value


def _check_probs(frame_probs, name: str = "frame_probs") -> np.ndarray:
    """Returns ``frame_probs`` as float64 ``[T, K]`` in [0, 1] or raises naming the problem.

    Values within ``_PROB_TOLERANCE`` outside [0, 1] (float32 rounding) are clipped.
    """
    p = np.asarray(frame_probs, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"{name} must have shape [T, K] (frames, classes); got shape {p.shape}")
    if p.shape[0] == 0 or p.shape[1] == 0:
        raise ValueError(f"{name} must have at least one frame and one class; got shape {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError(f"{name} contains NaN or infinite values")
    lo, hi = float(p.min()), float(p.max())
    if lo < -_PROB_TOLERANCE or hi > 1.0 + _PROB_TOLERANCE:
        raise ValueError(f"{name} must be probabilities in [0, 1]; got values in [{lo:.6g}, {hi:.6g}]")
    return np.clip(p, 0.0, 1.0)


def _check_events(events, n_classes: int, clip_duration: float | None, name: str) -> list[Event]:
    """Validates one clip's event list; returns it sorted by (onset, offset, class)."""
    if isinstance(events, (str, bytes)) or not hasattr(events, "__iter__"):
        raise ValueError(f"{name} must be a list of (class_index, onset_s, offset_s); got {events!r}")
    out = []
    for i, ev in enumerate(events):
        try:
            cls, onset, offset = ev
        except (TypeError, ValueError):
            raise ValueError(f"{name}[{i}] must be (class_index, onset_s, offset_s); got {ev!r}") from None
        if isinstance(cls, (bool, np.bool_)) or not float(cls).is_integer():
            raise ValueError(f"{name}[{i}]: class index must be an integer; got {cls!r}")
        cls = int(cls)
        if not 0 <= cls < n_classes:
            raise ValueError(f"{name}[{i}]: class index {cls} out of range [0, {n_classes})")
        onset, offset = float(onset), float(offset)
        if not (math.isfinite(onset) and math.isfinite(offset)):
            raise ValueError(f"{name}[{i}]: onset/offset must be finite; got ({onset}, {offset})")
        if onset < 0.0 or offset <= onset:
            raise ValueError(f"{name}[{i}]: need 0 <= onset < offset; got onset={onset}, offset={offset}")
        if clip_duration is not None and _round_t(offset) > _round_t(clip_duration):
            raise ValueError(f"{name}[{i}]: offset {offset} s is beyond clip_duration {clip_duration} s")
        out.append((cls, onset, offset))
    return sorted(out, key=lambda e: (e[1], e[2], e[0]))


def _check_clip_lists(ref, est, n_classes, clip_duration):
    if len(ref) != len(est):
        raise ValueError(f"got {len(ref)} reference clips but {len(est)} estimated clips")
    if isinstance(n_classes, bool) or int(n_classes) != n_classes or n_classes < 1:
        raise ValueError(f"n_classes must be a positive integer; got {n_classes!r}")
    ref = [_check_events(r, n_classes, clip_duration, f"ref[{i}]") for i, r in enumerate(ref)]
    est = [_check_events(e, n_classes, clip_duration, f"est[{i}]") for i, e in enumerate(est)]
    return ref, est


def _frame_edges(n_frames: int, hop_s: float, clip_duration: float | None) -> np.ndarray:
    """Frame boundary times ``[T + 1]``: frame i is ``[edges[i], edges[i+1])``."""
    edges = np.arange(n_frames + 1, dtype=np.float64) * hop_s
    if clip_duration is not None:
        # Allow < 1 frame of overhang (centre padding); more means hop_s or
        # clip_duration is wrong, which would silently shift every event.
        if _round_t(edges[-2]) >= _round_t(clip_duration):
            raise ValueError(
                f"{n_frames} frames of {hop_s} s span {edges[-1]:.6g} s, more than one frame beyond "
                f"clip_duration={clip_duration} s; check hop_s / clip_duration"
            )
        edges = np.minimum(edges, clip_duration)
    return edges


def median_smooth(probs: np.ndarray, median_filter: int) -> np.ndarray:
    """Median filter along time per class (``median_filter`` frames, odd).

    Median filtering commutes with thresholding (order statistic), so
    filtering the scores is the same as filtering the binary decisions at any
    threshold -- which lets PSDS use the same post-processing.
    """
    if isinstance(median_filter, bool) or int(median_filter) != median_filter or median_filter < 1 or median_filter % 2 == 0:
        raise ValueError(f"median_filter must be a positive odd number of frames; got {median_filter!r}")
    if median_filter == 1:
        return probs
    return _ndimage_median_filter(probs, size=(int(median_filter), 1), mode="nearest")


def fill_gaps(probs: np.ndarray, length: int) -> np.ndarray:
    """Fills every dip shorter than ``length`` frames per class along time: a grey closing
    (moving max, then moving min) with a flat window of ``length`` frames (odd; 1 = off).

    Like the median filter it commutes with thresholding (a flat closing of the scores,
    thresholded, is the binary closing of the decisions), so at *every* threshold it merges
    the detections of one class separated by fewer than ``length`` inactive frames, and never
    shortens a detection: the gap-merging step of the DCASE baselines, usable inside PSDS.
    Events made of bursts (clicks, beeps, trills) are labelled over their whole extent; without
    it their detections cover the bursts only and miss the 70 % ground-truth coverage of PSDS.
    """
    if isinstance(length, bool) or int(length) != length or length < 1 or length % 2 == 0:
        raise ValueError(f"fill_gaps must be a positive odd number of frames; got {length!r}")
    if length == 1:
        return probs
    # Outside the clip nothing is active (zero padding wider than the half-window): a dip at
    # the clip's edge is not a gap between two detections and stays.
    r = int(length) // 2
    padded = np.pad(np.asarray(probs), ((r, r), (0, 0)))
    return _ndimage_grey_closing(padded, size=(int(length), 1), mode="nearest")[r:padded.shape[0] - r]


def smooth_scores(probs: np.ndarray, median_filter: int = 1, fill: int = 1) -> np.ndarray:
    """The post-processing of frame scores ``[T, K]`` before thresholding: gap filling
    (:func:`fill_gaps`, ``fill`` frames), then the median filter (``median_filter`` frames),
    which removes the short isolated detections the filling leaves. Both are 1 = off."""
    return median_smooth(fill_gaps(probs, fill), median_filter)


def _runs(active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start (inclusive) and stop (exclusive) indices of True runs of a 1-D bool array."""
    d = np.diff(np.concatenate(([0], active.astype(np.int8), [0])))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


# --------------------------------------------------------------------------
# Decoding


def frame_probs_to_events(
    frame_probs,
    hop_s: float,
    threshold: float = 0.5,
    median_filter: int = 1,
    clip_duration: float | None = None,
    fill: int = 1,
) -> list[Event]:
    """Turns one clip's frame probabilities into an event list.

    Args:
      frame_probs: ``[T, K]`` probabilities in [0, 1].
      hop_s: frame hop in seconds (frame i covers ``[i*hop_s, (i+1)*hop_s)``).
      threshold: a frame is active when its (smoothed) probability is strictly
        greater than ``threshold``.
      median_filter: odd median-filter length in frames applied per class
        along time before thresholding (1 = off).
      clip_duration: if given, event offsets are clipped to it.
      fill: odd gap-filling length in frames applied before the median filter
        (:func:`fill_gaps`; 1 = off).

    Returns:
      ``[(class_index, onset_s, offset_s), ...]`` -- one event per maximal run
      of active frames per class, sorted by (onset, offset, class).
    """
    probs = _check_probs(frame_probs)
    hop_s = _check_positive(hop_s, "hop_s")
    threshold = _check_unit_interval(threshold, "threshold", closed_right=False)
    edges = _frame_edges(probs.shape[0], hop_s, clip_duration)
    active = smooth_scores(probs, median_filter, fill) > threshold
    events = []
    for k in range(probs.shape[1]):
        starts, stops = _runs(active[:, k])
        events.extend((k, float(edges[a]), float(edges[b])) for a, b in zip(starts, stops))
    return sorted(events, key=lambda e: (e[1], e[2], e[0]))


# --------------------------------------------------------------------------
# Counting helpers shared by the segment- and event-based metrics


def _prf(n_tp, n_ref, n_sys):
    """Precision, recall, F1 (0 where undefined, as sed_eval)."""
    n_tp, n_ref, n_sys = (np.asarray(x, dtype=np.float64) for x in (n_tp, n_ref, n_sys))
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(n_sys > 0, n_tp / n_sys, 0.0)
        r = np.where(n_ref > 0, n_tp / n_ref, 0.0)
        f = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
    return p, r, f


def _summarise(n_tp, n_ref, n_sys, subs, dels, ins, cls_tp, cls_ref, cls_sys) -> dict:
    """Overall (micro) and class-wise scores from accumulated counts."""
    p, r, f = (float(x) for x in _prf(n_tp, n_ref, n_sys))
    _, _, cls_f = _prf(cls_tp, cls_ref, cls_sys)
    has_ref = np.asarray(cls_ref) > 0
    per_class_f1 = np.where(has_ref, cls_f, np.nan)
    rate = (lambda x: float(x) / n_ref) if n_ref > 0 else (lambda x: float("nan"))
    return {
        "f1": f,
        "precision": p,
        "recall": r,
        "error_rate": rate(subs + dels + ins),
        "substitution_rate": rate(subs),
        "deletion_rate": rate(dels),
        "insertion_rate": rate(ins),
        "macro_f1": float(np.mean(cls_f[has_ref])) if has_ref.any() else float("nan"),
        "per_class_f1": [float(x) for x in per_class_f1],
        "per_class_n_ref": [int(x) for x in cls_ref],
        "per_class_n_sys": [int(x) for x in cls_sys],
        "n_ref": int(n_ref),
        "n_sys": int(n_sys),
        "n_tp": int(n_tp),
    }


# --------------------------------------------------------------------------
# Segment-based metrics (sed_eval SegmentBasedMetrics)


def _segment_roll(events: list[Event], n_segments: int, n_classes: int, segment_s: float) -> np.ndarray:
    """``[n_segments, K]`` bool: class active anywhere inside segment s.

    As sed_eval: onset segment ``floor(onset / L)``, offset segment
    ``ceil(offset / L)`` (exclusive), so ``[1.0, 2.0)`` touches segment 1 only.
    """
    roll = np.zeros((n_segments, n_classes), dtype=bool)
    for cls, onset, offset in events:
        a = int(math.floor(_round_t(onset / segment_s)))
        b = min(int(math.ceil(_round_t(offset / segment_s))), n_segments)
        roll[a:b, cls] = True
    return roll


def segment_based_metrics(
    ref_events_per_clip: Sequence[Sequence[Event]],
    est_events_per_clip: Sequence[Sequence[Event]],
    n_classes: int,
    clip_duration: float,
    segment_s: float = 1.0,
) -> dict:
    """Segment-based metrics over all clips (sed_eval ``SegmentBasedMetrics``).

    Each clip is cut into ``ceil(clip_duration / segment_s)`` segments; a class
    is active in a segment if any of its events overlaps it. Per segment, with
    ``Nref``/``Nsys`` active reference/system classes and ``TP`` their overlap:
    ``S = min(Nref, Nsys) - TP``, ``D = max(0, Nref - Nsys)``,
    ``I = max(0, Nsys - Nref)``; ``ER = (ΣS + ΣD + ΣI) / ΣNref``. Precision,
    recall and F1 are micro-averaged over all (segment, class) pairs.

    Returns:
      dict with ``f1, precision, recall, error_rate, substitution_rate,
      deletion_rate, insertion_rate, macro_f1`` (mean class-wise F1 over
      classes with reference activity), ``per_class_f1`` (list of K, nan for
      classes without reference activity) and counts ``n_ref, n_sys, n_tp``.
    """
    clip_duration = _check_positive(clip_duration, "clip_duration")
    segment_s = _check_positive(segment_s, "segment_s")
    ref, est = _check_clip_lists(ref_events_per_clip, est_events_per_clip, n_classes, clip_duration)
    n_segments = int(math.ceil(_round_t(clip_duration / segment_s)))
    if not ref:
        raise ValueError("no clips to evaluate")
    R = np.stack([_segment_roll(r, n_segments, n_classes, segment_s) for r in ref])  # [N, S, K]
    E = np.stack([_segment_roll(e, n_segments, n_classes, segment_s) for e in est])
    tp = (R & E).sum(-1)
    n_ref, n_sys = R.sum(-1), E.sum(-1)  # per (clip, segment)
    return _summarise(
        n_tp=int(tp.sum()),
        n_ref=int(n_ref.sum()),
        n_sys=int(n_sys.sum()),
        subs=int((np.minimum(n_ref, n_sys) - tp).sum()),
        dels=int(np.maximum(0, n_ref - n_sys).sum()),
        ins=int(np.maximum(0, n_sys - n_ref).sum()),
        cls_tp=(R & E).sum((0, 1)),
        cls_ref=R.sum((0, 1)),
        cls_sys=E.sum((0, 1)),
    )


# --------------------------------------------------------------------------
# Event-based metrics (sed_eval EventBasedMetrics, optimal matching)


def _collar_hits(ref: Sequence[Event], est: Sequence[Event], t_collar, percentage_of_length, evaluate_onset, evaluate_offset) -> np.ndarray:
    """``[len(ref), len(est)]`` bool: timing conditions met (labels ignored)."""
    hit = np.ones((len(ref), len(est)), dtype=bool)
    if not ref or not est:
        return hit
    r_on, r_off = (np.array([e[i] for e in ref])[:, None] for i in (1, 2))
    e_on, e_off = (np.array([e[i] for e in est])[None, :] for i in (1, 2))
    if evaluate_onset:
        hit &= _round_t(np.abs(r_on - e_on)) <= _round_t(t_collar)
    if evaluate_offset:
        offset_collar = np.maximum(t_collar, percentage_of_length * (r_off - r_on))
        hit &= _round_t(np.abs(r_off - e_off)) <= _round_t(offset_collar)
    return hit


def _max_matching(hit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-cardinality one-to-one matching in a bool hit matrix.

    Same optimum as sed_eval's ``bipartite_match`` (Hopcroft-Karp); solved as
    an assignment problem maximising the number of hit pairs.
    """
    if hit.size == 0:
        return np.zeros(0, dtype=int), np.zeros(0, dtype=int)
    rows, cols = linear_sum_assignment(-hit.astype(np.float64))
    keep = hit[rows, cols]
    return rows[keep], cols[keep]


def event_based_metrics(
    ref_events_per_clip: Sequence[Sequence[Event]],
    est_events_per_clip: Sequence[Sequence[Event]],
    n_classes: int,
    t_collar: float = 0.2,
    percentage_of_length: float = 0.2,
    evaluate_onset: bool = True,
    evaluate_offset: bool = True,
    clip_duration: float | None = None,
) -> dict:
    """Event-based metrics over all clips (sed_eval ``EventBasedMetrics``).

    A system event matches a reference event of the same class when
    ``|Δonset| <= t_collar`` and (if ``evaluate_offset``)
    ``|Δoffset| <= max(t_collar, percentage_of_length * reference_length)``.
    True positives are a maximum one-to-one matching per clip and class
    (sed_eval's ``event_matching_type='optimal'``). Among the leftovers,
    reference events are paired greedily (in time order) with unmatched system
    events of *another* class that meet the timing conditions: each pair is one
    substitution. Then ``D = Nref - TP - S``, ``I = Nsys - TP - S`` and
    ``ER = (S + D + I) / Nref``.

    Returns:
      same keys as :func:`segment_based_metrics`.
    """
    t_collar = _check_positive(t_collar, "t_collar")
    if not (math.isfinite(percentage_of_length) and percentage_of_length >= 0):
        raise ValueError(f"percentage_of_length must be >= 0; got {percentage_of_length!r}")
    if clip_duration is not None:
        clip_duration = _check_positive(clip_duration, "clip_duration")
    ref, est = _check_clip_lists(ref_events_per_clip, est_events_per_clip, n_classes, clip_duration)
    timing = dict(t_collar=t_collar, percentage_of_length=percentage_of_length,
                  evaluate_onset=evaluate_onset, evaluate_offset=evaluate_offset)
    cls_tp = np.zeros(n_classes, dtype=np.int64)
    cls_ref = np.zeros(n_classes, dtype=np.int64)
    cls_sys = np.zeros(n_classes, dtype=np.int64)
    n_subs = 0
    for r_events, e_events in zip(ref, est):
        r_cls = np.array([e[0] for e in r_events], dtype=int)
        e_cls = np.array([e[0] for e in e_events], dtype=int)
        hit = _collar_hits(r_events, e_events, **timing)
        r_matched = np.zeros(len(r_events), dtype=bool)
        e_matched = np.zeros(len(e_events), dtype=bool)
        for k in np.union1d(r_cls, e_cls):
            ri, ei = np.flatnonzero(r_cls == k), np.flatnonzero(e_cls == k)
            rows, cols = _max_matching(hit[np.ix_(ri, ei)])
            r_matched[ri[rows]] = True
            e_matched[ei[cols]] = True
            cls_tp[k] += len(rows)
        cls_ref += np.bincount(r_cls, minlength=n_classes)
        cls_sys += np.bincount(e_cls, minlength=n_classes)
        # Greedy substitutions among leftovers (same loop order as sed_eval).
        # Same-class leftover pairs never meet the timing conditions here,
        # otherwise the matching above would not have been maximum.
        e_used = e_matched.copy()
        for j in np.flatnonzero(~r_matched):
            for i in np.flatnonzero(~e_used):
                if hit[j, i]:
                    e_used[i] = True
                    n_subs += 1
                    break
    n_tp, n_ref, n_sys = int(cls_tp.sum()), int(cls_ref.sum()), int(cls_sys.sum())
    return _summarise(
        n_tp=n_tp, n_ref=n_ref, n_sys=n_sys,
        subs=n_subs, dels=n_ref - n_tp - n_subs, ins=n_sys - n_tp - n_subs,
        cls_tp=cls_tp, cls_ref=cls_ref, cls_sys=cls_sys,
    )


# --------------------------------------------------------------------------
# PSDS (intersection-based, Bilen et al. 2020 / sed_scores_eval)


class PSDROC(NamedTuple):
    """PSD-ROC over every distinct score (exact) or over a threshold grid.

    Attributes:
      etpr: ``[M]`` effective TPR ``max(0, mean_k TPR_k - alpha_st * std_k TPR_k)``
        on the step grid ``efpr`` (value holds from ``efpr[i]`` to ``efpr[i+1]``).
      efpr: ``[M]`` increasing eFPR grid (per hour), ending at ``max_efpr``.
      thresholds: ``[Θ]`` decision thresholds evaluated (grid), or per class
        an array of that class's distinct scores (exact; -1 = all active).
      tps: ``[K, Θ]`` ground-truth events meeting the GTC per class/threshold
        (grid), or per class an array aligned with ``thresholds[k]`` (exact).
      fps: ``[K, Θ]`` detections failing the DTC, laid out as ``tps``.
      n_ref: ``[K]`` ground-truth events per class.
      classes: indices of the classes averaged (those with ground truth).
      duration_h: total evaluated audio duration in hours.
    """

    etpr: np.ndarray
    efpr: np.ndarray
    thresholds: np.ndarray
    tps: np.ndarray
    fps: np.ndarray
    n_ref: np.ndarray
    classes: np.ndarray
    duration_h: float

    def area(self) -> float:
        """PSDS: the area under ``etpr`` over ``[0, max_efpr]``, divided by ``max_efpr``."""
        return float(np.sum(np.diff(self.efpr) * self.etpr[:-1]) / self.efpr[-1])

    def with_alpha_st(self, alpha_st: float) -> "PSDROC":
        """The same counts summarised with another ``alpha_st`` (no re-counting)."""
        return _effective_roc(self.thresholds, self.tps, self.fps, self.n_ref, self.duration_h,
                              _check_alpha_st(alpha_st), float(self.efpr[-1]))


def _frame_overlaps(edges: np.ndarray, onsets: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """``[G, T]`` seconds of overlap between each interval and each frame."""
    lo = np.maximum(edges[None, :-1], onsets[:, None])
    hi = np.minimum(edges[None, 1:], offsets[:, None])
    return np.maximum(hi - lo, 0.0)


def _clip_intersection_counts(probs, edges, events, thresholds, dtc, gtc):
    """TP/FP counts of one clip for every (class, threshold).

    Detections at threshold θ are runs of frames with ``p > θ``. A detection
    is *relevant* if the summed intersection with same-class ground truth is
    at least ``dtc`` times its length (DTC), otherwise it is a false positive.
    A ground-truth event is a true positive if the summed intersection with
    relevant same-class detections is at least ``gtc`` times its length (GTC).

    Args:
      probs: ``[T, K]``; edges: ``[T+1]``; events: validated list for the clip;
      thresholds: ``[Θ]``.

    Returns:
      tps, fps: ``[K, Θ]`` int arrays.
    """
    n_frames, n_classes = probs.shape
    n_thr = len(thresholds)
    tps = np.zeros((n_classes, n_thr), dtype=np.int64)
    fps = np.zeros((n_classes, n_thr), dtype=np.int64)
    gt_cls = np.array([e[0] for e in events], dtype=int)
    gt_on = np.array([e[1] for e in events], dtype=np.float64)
    gt_off = np.array([e[2] for e in events], dtype=np.float64)
    # Only classes that are ever active or have ground truth can contribute;
    # skipping the rest keeps evaluation fast for 41 mostly-silent classes.
    classes = np.flatnonzero((probs.max(0) > thresholds.min()) | np.isin(np.arange(n_classes), gt_cls))
    if classes.size == 0:
        return tps, fps
    frame_len = np.diff(edges)  # [T]
    overlap = _frame_overlaps(edges, gt_on, gt_off)  # [G, T]
    local = np.full(n_classes, -1)
    local[classes] = np.arange(len(classes))
    gt_cover = np.zeros((len(classes), n_frames))  # same-class GT seconds in each frame
    np.add.at(gt_cover, local[gt_cls], overlap)

    active = probs[:, classes].T[:, None, :] > thresholds[None, :, None]  # [C, Θ, T]
    active = active.reshape(-1, n_frames)
    starts = active & ~np.pad(active, ((0, 0), (1, 0)))[:, :-1]
    flat = np.flatnonzero(active)
    run_id = np.cumsum(starts.ravel())[flat] - 1  # run index of every active frame
    t_idx, row_idx = flat % n_frames, flat // n_frames
    run_len = np.bincount(run_id, weights=frame_len[t_idx])
    run_gt = np.bincount(run_id, weights=gt_cover[row_idx // n_thr, t_idx])
    relevant = _round_t(run_gt) >= _round_t(dtc * run_len)  # DTC per detection
    run_row = np.flatnonzero(starts.ravel()) // n_frames
    n_rows = len(classes) * n_thr
    fps[classes] = np.bincount(run_row, weights=~relevant, minlength=n_rows).reshape(len(classes), n_thr)
    if len(events):
        relevant_frames = np.zeros(active.size)
        relevant_frames[flat] = relevant[run_id]
        relevant_frames = relevant_frames.reshape(len(classes), n_thr, n_frames)
        covered = np.einsum("gqt,gt->gq", relevant_frames[local[gt_cls]], overlap)  # [G, Θ]
        hit = _round_t(covered) >= _round_t(gtc * (gt_off - gt_on))[:, None]
        np.add.at(tps, gt_cls, hit.astype(np.int64))
    return tps, fps


def _staircase(tpr: np.ndarray, efpr: np.ndarray, max_efpr: float):
    """Per-class ROC as a monotone staircase (sed_scores_eval's ``_unique_cummax_sort``).

    Operating points are sorted by (eFPR, TPR); TPR is replaced by its running
    maximum (the best TPR reachable without exceeding that eFPR) and, for
    repeated eFPR values, the largest TPR is kept. Points above ``max_efpr``
    are dropped.
    """
    order = np.lexsort((tpr, efpr))
    tpr, efpr = np.maximum.accumulate(tpr[order]), efpr[order]
    last = np.r_[efpr[1:] != efpr[:-1], True]
    tpr, efpr = tpr[last], efpr[last]
    keep = efpr <= max_efpr
    return tpr[keep], efpr[keep]


def _exact_clip_steps(probs, edges, events, dtc, gtc):
    """TP/FP counts of one clip as step functions of the threshold, for every class.

    With detections ``p > θ``, a clip's counts for class k only change where θ
    crosses one of that clip's scores of class k: they are constant on
    ``[v_i, v_{i+1})`` between consecutive distinct scores. Returns arrays
    ``(class, threshold, d_tp, d_fp)``: the count at θ is the sum of the deltas
    at thresholds ``<= θ``; threshold -1 carries the value below every score
    (all frames active).

    Classes with no ground truth in the clip need no intersection test: each
    run is a false positive, and frame t starts a run exactly for
    ``θ in [p[t-1], p[t])`` (``p[-1] = -1``), so FP(θ) is a sum of such
    intervals. Classes with ground truth are counted at each of their distinct
    scores with the grid routine.
    """
    n_frames, n_classes = probs.shape
    gt_cls = np.array([e[0] for e in events], dtype=int)
    has_gt = np.zeros(n_classes, bool)
    has_gt[gt_cls] = True
    cls_parts, thr_parts, dtp_parts, dfp_parts = [], [], [], []

    free = np.flatnonzero(~has_gt)
    if free.size:
        p = probs[:, free]  # [T, C]
        prev = np.vstack([np.full((1, free.size), -1.0), p[:-1]])
        t_idx, c_idx = np.nonzero(prev < p)
        n = t_idx.size
        cls_parts += [free[c_idx], free[c_idx]]
        thr_parts += [prev[t_idx, c_idx], p[t_idx, c_idx]]
        dtp_parts += [np.zeros(2 * n, np.int64)]
        dfp_parts += [np.ones(n, np.int64), -np.ones(n, np.int64)]

    for k in np.flatnonzero(has_gt):
        thresholds = np.r_[-1.0, np.unique(probs[:, k])]
        own = [(0, on, off) for c, on, off in events if c == k]
        tps, fps = _clip_intersection_counts(probs[:, [k]], edges, own, thresholds, dtc, gtc)
        cls_parts.append(np.full(thresholds.size, k))
        thr_parts.append(thresholds)
        dtp_parts.append(np.diff(tps[0], prepend=0))
        dfp_parts.append(np.diff(fps[0], prepend=0))
    if not cls_parts:
        return (np.zeros(0, int), np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64))
    return (np.concatenate(cls_parts), np.concatenate(thr_parts), np.concatenate(dtp_parts),
            np.concatenate(dfp_parts))


def _exact_counts(steps, n_classes):
    """Per class (thresholds, TP, FP) at every distinct threshold, from clips' step deltas."""
    cls = np.concatenate([s[0] for s in steps])
    thr = np.concatenate([s[1] for s in steps])
    dtp = np.concatenate([s[2] for s in steps])
    dfp = np.concatenate([s[3] for s in steps])
    order = np.lexsort((thr, cls))
    cls, thr, dtp, dfp = cls[order], thr[order], dtp[order], dfp[order]
    bounds = np.searchsorted(cls, np.arange(n_classes + 1))
    out = []
    for k in range(n_classes):
        lo, hi = bounds[k], bounds[k + 1]
        t = thr[lo:hi]
        tp, fp = np.cumsum(dtp[lo:hi]), np.cumsum(dfp[lo:hi])
        last = np.r_[t[1:] != t[:-1], True] if t.size else np.zeros(0, bool)  # value after a tie
        out.append((t[last], tp[last], fp[last]))
    return out


def psd_roc(
    frame_probs_list: Sequence[np.ndarray],
    ref_events_list: Sequence[Sequence[Event]],
    hop_s: float,
    clip_duration: float,
    dtc: float = 0.7,
    gtc: float = 0.7,
    alpha_st: float = 1.0,
    max_efpr: float = 100.0,
    thresholds=None,
    median_filter: int = 1,
    fill: int = 1,
) -> PSDROC:
    """PSD-ROC of a set of clips (see :func:`psds` for the arguments).

    With ``thresholds=None`` (exact), ``thresholds``/``tps``/``fps`` of the
    result hold, per class, the union of that class's distinct scores (lists
    of arrays); with a grid they are ``[Θ]`` / ``[K, Θ]`` arrays.
    """
    hop_s = _check_positive(hop_s, "hop_s")
    clip_duration = _check_positive(clip_duration, "clip_duration")
    dtc = _check_unit_interval(dtc, "dtc", closed_right=True)
    gtc = _check_unit_interval(gtc, "gtc", closed_right=True)
    max_efpr = _check_positive(max_efpr, "max_efpr")
    alpha_st = _check_alpha_st(alpha_st)
    exact = thresholds is None
    if not exact:
        thresholds = np.unique(np.asarray(thresholds, dtype=np.float64).ravel())
        if thresholds.size == 0 or thresholds.min() < 0 or thresholds.max() >= 1:
            raise ValueError(f"thresholds must be a non-empty set of values in [0, 1); got {thresholds!r}")
    if len(frame_probs_list) != len(ref_events_list):
        raise ValueError(f"got {len(frame_probs_list)} score arrays but {len(ref_events_list)} reference lists")
    if not frame_probs_list:
        raise ValueError("no clips to evaluate")

    n_classes = None
    tps = fps = n_ref = None
    steps = []
    for i, (p, ref) in enumerate(zip(frame_probs_list, ref_events_list)):
        p = _check_probs(p, f"frame_probs_list[{i}]")
        if n_classes is None:
            n_classes = p.shape[1]
            if not exact:
                tps = np.zeros((n_classes, thresholds.size), dtype=np.int64)
                fps = np.zeros_like(tps)
            n_ref = np.zeros(n_classes, dtype=np.int64)
        elif p.shape[1] != n_classes:
            raise ValueError(f"frame_probs_list[{i}] has {p.shape[1]} classes, expected {n_classes}")
        events = _check_events(ref, n_classes, clip_duration, f"ref_events_list[{i}]")
        edges = _frame_edges(p.shape[0], hop_s, clip_duration)
        p = smooth_scores(p, median_filter, fill)
        if exact:
            steps.append(_exact_clip_steps(p, edges, events, dtc, gtc))
        else:
            t, f = _clip_intersection_counts(p, edges, events, thresholds, dtc, gtc)
            tps += t
            fps += f
        n_ref += np.bincount(np.array([e[0] for e in events], dtype=int), minlength=n_classes)

    duration_h = len(frame_probs_list) * clip_duration / _SECONDS_PER_HOUR
    if not np.any(n_ref > 0):
        raise ValueError("PSDS needs at least one ground-truth event")
    if exact:
        per_class = _exact_counts(steps, n_classes)
        thresholds = [c[0] for c in per_class]
        tps = [c[1] for c in per_class]
        fps = [c[2] for c in per_class]
    return _effective_roc(thresholds, tps, fps, n_ref, duration_h, alpha_st, max_efpr)


def _check_alpha_st(alpha_st: float) -> float:
    if not (math.isfinite(alpha_st) and alpha_st >= 0):
        raise ValueError(f"alpha_st must be >= 0; got {alpha_st!r}")
    return alpha_st


def _effective_roc(thresholds, tps, fps, n_ref, duration_h, alpha_st, max_efpr) -> PSDROC:
    """The PSD-ROC of per-class counts (see :class:`PSDROC` for their layout)."""
    classes = np.flatnonzero(n_ref > 0)
    # One staircase per class; the "nothing detected" point (0, 0) is always reachable.
    curves = [
        _staircase(np.r_[0.0, tps[k] / n_ref[k]], np.r_[0.0, fps[k] / duration_h], max_efpr)
        for k in classes
    ]
    grid = np.unique(np.concatenate([efpr for _, efpr in curves]))
    # Value of each staircase at each grid point ('previous' interpolation).
    tpr_on_grid = np.stack([tpr[np.searchsorted(efpr, grid, side="right") - 1] for tpr, efpr in curves])
    etpr = np.maximum(tpr_on_grid.mean(0) - alpha_st * tpr_on_grid.std(0), 0.0)
    return PSDROC(
        etpr=np.r_[etpr, etpr[-1]],
        efpr=np.r_[grid, max_efpr],
        thresholds=thresholds,
        tps=tps,
        fps=fps,
        n_ref=n_ref,
        classes=classes,
        duration_h=duration_h,
    )


def psds(
    frame_probs_list: Sequence[np.ndarray],
    ref_events_list: Sequence[Sequence[Event]],
    hop_s: float,
    clip_duration: float,
    dtc: float = 0.7,
    gtc: float = 0.7,
    alpha_st: float = 1.0,
    max_efpr: float = 100.0,
    thresholds=None,
    median_filter: int = 1,
    fill: int = 1,
) -> float:
    """Polyphonic Sound Detection Score; defaults are DCASE scenario 1.

    For every threshold θ and class k, detections (runs of frames with
    ``p > θ``) are judged with the intersection criteria (DTC ``dtc``, GTC
    ``gtc``; see :func:`_clip_intersection_counts`), giving
    ``TPR_k(θ) = TP / #GT_k`` and ``eFPR_k(θ) = FP / hours of audio``. Each
    class ROC is the monotone staircase through its operating points; PSDS is
    the area under ``max(0, mean_k TPR_k(e) - alpha_st * std_k TPR_k(e))`` for
    ``e in [0, max_efpr]``, divided by ``max_efpr``.

    Args:
      frame_probs_list: per clip ``[T, K]`` probabilities.
      ref_events_list: per clip ground-truth events.
      hop_s, clip_duration: time grid (see module docstring); total duration =
        ``n_clips * clip_duration``.
      thresholds: ``None`` (default) for the exact, threshold-independent
        PSDS (every distinct score is an operating point); or decision
        thresholds in [0, 1), e.g. ``DEFAULT_PSDS_THRESHOLDS`` (a grid
        approximation that misses operating points between its values).
      median_filter: odd median filter length in frames applied before
        thresholding.
      fill: odd gap-filling length in frames applied before the median
        filter (:func:`fill_gaps`; 1 = off).

    Returns:
      PSDS in [0, 1].
    """
    roc = psd_roc(frame_probs_list, ref_events_list, hop_s, clip_duration, dtc=dtc, gtc=gtc,
                  alpha_st=alpha_st, max_efpr=max_efpr,
                  thresholds=thresholds, median_filter=median_filter, fill=fill)
    return roc.area()


# --------------------------------------------------------------------------
# What evaluate.py reports


def _checked_probs(frame_probs_list, ref_events_list) -> list[np.ndarray]:
    if len(frame_probs_list) != len(ref_events_list):
        raise ValueError(f"got {len(frame_probs_list)} score arrays but {len(ref_events_list)} reference lists")
    if not frame_probs_list:
        raise ValueError("no clips to evaluate")
    probs = [_check_probs(p, f"frame_probs_list[{i}]") for i, p in enumerate(frame_probs_list)]
    for i, p in enumerate(probs):
        if p.shape[1] != probs[0].shape[1]:
            raise ValueError(f"frame_probs_list[{i}] has {p.shape[1]} classes, expected {probs[0].shape[1]}")
    return probs


class _Decoded(NamedTuple):
    """What every localisation figure is computed from: the detections at the decision
    threshold, their event-based matching, and the scenario-1 PSD-ROC (alpha_st = 1)."""

    probs: list
    est: list
    events: dict
    roc: PSDROC


def _decode(frame_probs_list, ref_events_list, hop_s, clip_duration, threshold, median_filter, fill,
            psds_thresholds=None, dtc=0.7, gtc=0.7, max_efpr=100.0) -> _Decoded:
    probs = _checked_probs(frame_probs_list, ref_events_list)
    n_classes = probs[0].shape[1]
    est = [frame_probs_to_events(p, hop_s, threshold, median_filter, clip_duration, fill) for p in probs]
    evt = event_based_metrics(ref_events_list, est, n_classes, clip_duration=clip_duration)
    roc = psd_roc(probs, ref_events_list, hop_s, clip_duration, dtc=dtc, gtc=gtc, max_efpr=max_efpr,
                  thresholds=psds_thresholds, median_filter=median_filter, fill=fill)
    return _Decoded(probs, est, evt, roc)


def _overall(d: _Decoded, ref_events_list, clip_duration, threshold, segment_s) -> dict[str, float]:
    n_classes = d.probs[0].shape[1]
    seg = segment_based_metrics(ref_events_list, d.est, n_classes, clip_duration, segment_s)
    onset = event_based_metrics(ref_events_list, d.est, n_classes, evaluate_offset=False,
                                clip_duration=clip_duration)
    out = {f"segment_{k}": seg[k] for k in ("f1", "precision", "recall", "macro_f1")}
    out["segment_er"] = seg["error_rate"]
    out.update({f"event_{k}": d.events[k] for k in ("f1", "precision", "recall", "macro_f1")})
    out["event_er"] = d.events["error_rate"]
    out["event_onset_f1"] = onset["f1"]
    out["psds1"] = d.roc.area()
    # Scenario 1 without its across-class penalty: how much of PSDS1's shortfall is the spread
    # of the per-class TPRs rather than their mean.
    out["psds1_alpha_st0"] = d.roc.with_alpha_st(0.0).area()
    out.update(threshold=float(threshold), n_clips=len(d.probs),
               n_ref_events=d.events["n_ref"], n_est_events=d.events["n_sys"])
    return out


def _per_class(d: _Decoded, ref_events_list, max_efpr) -> dict[str, list]:
    roc, n_classes = d.roc, d.probs[0].shape[1]
    durations: list[list[float]] = [[] for _ in range(n_classes)]
    for clip_events in ref_events_list:
        for k, onset, offset in clip_events:
            durations[int(k)].append(float(offset) - float(onset))
    out: dict[str, list] = {"n_ref": [], "median_duration_s": [], "n_est": [], "event_f1": [], "max_tpr": []}
    for k in range(n_classes):
        n_ref = int(roc.n_ref[k])
        out["n_ref"].append(n_ref)
        out["n_est"].append(int(d.events["per_class_n_sys"][k]))
        if n_ref == 0:
            for key in ("median_duration_s", "event_f1", "max_tpr"):
                out[key].append(None)
            continue
        in_range = np.asarray(roc.fps[k]) / roc.duration_h <= max_efpr
        tpr = np.asarray(roc.tps[k])[in_range] / n_ref
        out["median_duration_s"].append(float(np.median(durations[k])))
        out["event_f1"].append(float(d.events["per_class_f1"][k]))
        out["max_tpr"].append(float(tpr.max()) if tpr.size else 0.0)
    return out


def localisation_metrics(
    frame_probs_list: Sequence[np.ndarray],
    ref_events_list: Sequence[Sequence[Event]],
    hop_s: float,
    clip_duration: float,
    threshold: float = 0.5,
    median_filter: int = 1,
    segment_s: float = 1.0,
    psds_thresholds=None,
    fill: int = 1,
) -> dict[str, float]:
    """All localisation metrics for one model on one split, as a flat dict.

    Args:
      frame_probs_list: per clip ``[T, K]`` frame-level class probabilities
        (e.g. the first-step attention output for 2APAE).
      ref_events_list: per clip ground-truth ``(class, onset_s, offset_s)``.
      hop_s: frame hop in seconds; clip_duration: clip length in seconds.
      threshold: decision threshold for the segment/event metrics.
      median_filter: odd median-filter length in frames (1 = off).
      psds_thresholds: ``None`` for the exact PSDS, or a threshold grid.
      fill: odd gap-filling length in frames before the median filter (1 = off).

    Returns:
      ``segment_f1, segment_precision, segment_recall, segment_er,
      segment_macro_f1`` (1 s segments), ``event_f1, event_precision,
      event_recall, event_er, event_macro_f1`` (200 ms onset collar, offset
      collar max(200 ms, 20 %)), ``event_onset_f1`` (onset collar only),
      ``psds1`` (DCASE scenario 1), ``psds1_alpha_st0`` (the same with
      ``alpha_st = 0``: the area under the mean class TPR), ``threshold``, ``n_clips``,
      ``n_ref_events``, ``n_est_events``.
    """
    d = _decode(frame_probs_list, ref_events_list, hop_s, clip_duration, threshold, median_filter, fill,
                psds_thresholds)
    return _overall(d, ref_events_list, clip_duration, threshold, segment_s)


def class_wise_localisation(
    frame_probs_list: Sequence[np.ndarray],
    ref_events_list: Sequence[Sequence[Event]],
    hop_s: float,
    clip_duration: float,
    threshold: float = 0.5,
    median_filter: int = 1,
    fill: int = 1,
    dtc: float = 0.7,
    gtc: float = 0.7,
    max_efpr: float = 100.0,
) -> dict[str, list]:
    """What the overall localisation figures are made of, per class.

    Same arguments as :func:`localisation_metrics` (and scenario 1's ``dtc``, ``gtc``,
    ``max_efpr``). Returns lists of length ``K`` (None where a class has no reference event):

    * ``n_ref``: reference events; ``median_duration_s``: their median duration;
    * ``n_est``: detections at ``threshold`` after the post-processing;
    * ``event_f1``: event-based F1 (200 ms collar, as :func:`event_based_metrics`);
    * ``max_tpr``: the highest TPR the class's PSD-ROC reaches at eFPR <= ``max_efpr``. PSDS1
      averages the classes' TPRs minus their spread over that range, so a class at 0 here is
      never detected there and costs PSDS1 the most.
    """
    d = _decode(frame_probs_list, ref_events_list, hop_s, clip_duration, threshold, median_filter, fill,
                dtc=dtc, gtc=gtc, max_efpr=max_efpr)
    return _per_class(d, ref_events_list, max_efpr)


def localisation_report(
    frame_probs_list: Sequence[np.ndarray],
    ref_events_list: Sequence[Sequence[Event]],
    hop_s: float,
    clip_duration: float,
    threshold: float = 0.5,
    median_filter: int = 1,
    segment_s: float = 1.0,
    fill: int = 1,
) -> tuple[dict[str, float], dict[str, list]]:
    """``(localisation_metrics(...), class_wise_localisation(...))`` with the same arguments,
    from one decoding and one (exact, scenario 1) PSD-ROC instead of two of each."""
    d = _decode(frame_probs_list, ref_events_list, hop_s, clip_duration, threshold, median_filter, fill)
    return (_overall(d, ref_events_list, clip_duration, threshold, segment_s),
            _per_class(d, ref_events_list, 100.0))
