"""A run's evaluation as files: `WORKDIR/eval_<split>.{json,md}` (+ `_predictions.npz`).

    markdown = write_report(workdir, result, predictions)

The JSON is written last: its presence marks a finished evaluation for the sweep and the tables.
"""

from __future__ import annotations

import os
from typing import Any

from twostep_jax import fileio
from twostep_jax.config import alpha_text
from twostep_jax.train.workdir import eval_report_name


def _f(x: Any) -> str:
    return "–" if x is None else f"{x:.4f}"


def report_markdown(report: dict) -> str:
    """Overall metrics and a per-class table (AP/AUC; with `localisation_per_class`, the
    localisation of each class too) as Markdown."""
    clip, loc, ck = report["clip"], report["localisation"], report["checkpoint"]
    raw, pp = report.get("localisation_raw"), report.get("postprocessing")
    lines = [
        f"## {report['model']} ({report['preset']}, {alpha_text(report['alpha'], report.get('decoder', True))})"
        f" — {report['split']} split",
        "",
        f"SNR {report['snr']} dB, test fold {report['test_fold']}, {clip['num_clips']} clips; "
        f"{ck['kind']} checkpoint at step {ck['step']} (epoch {ck['epoch']}).",
        "",
        "| micro-P | macro-P | AUC | seg-F1 (1 s) | seg-ER | event-F1 (200 ms) | event-ER | PSDS1 |",
        "|---|---|---|---|---|---|---|---|",
        "| " + " | ".join(_f(v) for v in (
            clip["micro_ap"], clip["macro_ap"], clip["macro_auc"], loc["segment_f1"], loc["segment_er"],
            loc["event_f1"], loc["event_er"], loc["psds1"])) + " |",
        "",
        "micro-P / macro-P = average precision (sklearn), AUC = macro ROC-AUC, as the paper's "
        "Tables IV/V. PSDS1 is exact (every distinct score is an operating point).",
        "",
    ]
    if pp is not None:
        lines += [
            f"Localisation: read-out `{pp['readout']}`, gaps < {pp.get('fill_gaps', 1)} frames filled, "
            f"median filter {pp['median_filter']} frames, "
            f"threshold {pp['threshold']:g}, chosen on the validation split (val PSDS1 "
            f"{pp['val_psds1']:.4f}, val event-F1 {pp['val_event_f1']:.4f}): "
            f"{loc['n_est_events']} detected vs {loc['n_ref_events']} reference events."
            + (f" PSDS1 without its across-class penalty (α_ST = 0): {loc['psds1_alpha_st0']:.4f}."
               if "psds1_alpha_st0" in loc else ""),
            "",
        ]
    if raw is not None:
        lines += [
            "Without post-processing (the released model's `frame_probs` > 0.5, no median filter):",
            "",
            "| seg-F1 (1 s) | seg-ER | event-F1 (200 ms) | event-ER | PSDS1 | detected / reference |",
            "|---|---|---|---|---|---|",
            "| " + " | ".join(_f(v) for v in (raw["segment_f1"], raw["segment_er"], raw["event_f1"],
                                              raw["event_er"], raw["psds1"]))
            + f" | {raw['n_est_events']} / {raw['n_ref_events']} |",
            "",
        ]
    by_class = report.get("localisation_per_class")  # absent in reports written before it existed
    if by_class is None:
        lines += ["| class | positives | AP | AUC |", "|---|---|---|---|"]
    else:
        lines += [
            "Per class: clip-level AP/AUC, then localisation with the post-processing above "
            "(events = reference events, median duration of those, detected = detections, "
            "max TPR = the best TPR of the class's PSD-ROC at e-FPR <= 100/h: 0 means the class "
            "is never detected in PSDS1's range).",
            "",
            "| class | positives | AP | AUC | events | median duration s | detected | event-F1 | max TPR |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
    for name, m in clip["per_class"].items():
        row = f"| {name} | {m['positives']} | {_f(m['ap'])} | {_f(m['auc'])} |"
        if by_class is not None:
            c = by_class[name]
            duration = "–" if c["median_duration_s"] is None else f"{c['median_duration_s']:.2f}"
            row += f" {c['n_ref']} | {duration} | {c['n_est']} | {_f(c['event_f1'])} | {_f(c['max_tpr'])} |"
        lines.append(row)
    if clip["excluded_classes"]:
        lines += ["", f"Excluded from macro averages (no positive or no negative clip): "
                      f"{', '.join(clip['excluded_classes'])}."]
    return "\n".join(lines) + "\n"


def report_name(report: dict) -> str:
    """`eval_{split}`; evaluation on other data than the run's own (another SNR, a rebuilt
    dataset) gets `eval_{split}_data-{fingerprint}` so it never replaces the run's own result."""
    name = eval_report_name(report["split"])
    data = report["data"]
    if data["fingerprint"] != data["trained_fingerprint"]:
        name += f"_data-{data['fingerprint']}"
    return name


def write_report(workdir: str, report: dict, predictions: dict | None = None) -> str:
    """Writes WORKDIR/<report_name>.json, .md and (if given) _predictions.npz — JSON last: its
    presence marks a finished evaluation for the sweep and the tables; returns the Markdown."""
    md = report_markdown(report)
    base = os.path.join(workdir, report_name(report))
    if predictions is not None:
        fileio.save_npz(base + "_predictions.npz", **predictions)
    fileio.write_text(base + ".md", md)
    fileio.write_json(base + ".json", report)
    return md
