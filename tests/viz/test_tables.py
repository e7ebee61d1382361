"""twostep_jax.viz.tables: aggregation of fake run folders into Tables IV and V (exact expected
cells)."""

import csv
import io
import json

import pytest

from twostep_jax.viz import tables

# micro-P of fold f is BASE + 0.01 f; at SNR 0 everything is 0.10 lower.
# macro-P = micro-P - 0.05; AUC = 0.90 + 0.01 f;
# segment F1 = 0.50 + 0.01 f, event F1 = 0.30 + 0.01 f, PSDS1 = 0.20 + 0.01 f.
BASE = {("gap", 0.0): 0.40, ("gmp", 0.0): 0.50, ("2apae", 0.001): 0.70, ("2apae", 0.0): 0.65}


def write_run(root, model, alpha, snr, fold, *, preset="quick", evaluated=True, localisation=True):
    d = root / preset / f"{model}_a{alpha}" / f"snr{snr}" / f"fold{fold}"
    d.mkdir(parents=True)
    (d / "run_config.json").write_text(json.dumps(
        {"model": model, "snr": snr, "test_fold": fold, "alpha": alpha, "preset": preset, "epochs": 3}))
    if evaluated:
        micro = BASE[model, alpha] - (0.10 if snr == 0 else 0.0) + 0.01 * fold
        result = {"clip": {"micro_ap": micro, "macro_ap": micro - 0.05, "macro_auc": 0.90 + 0.01 * fold,
                           "per_class_ap": [0.1, 0.2]}}
        if localisation:
            result["localisation"] = {"segment_f1": 0.50 + 0.01 * fold, "segment_er": 0.6,
                                      "event_f1": 0.30 + 0.01 * fold, "psds1": 0.20 + 0.01 * fold}
        (d / "eval_test.json").write_text(json.dumps(result))
    return d


@pytest.fixture
def runs_dir(tmp_path):
    root = tmp_path / "runs"
    for fold in (1, 2, 3):
        for snr in (20, 0):
            write_run(root, "gap", 0.0, snr, fold, localisation=not (snr == 20 and fold == 3))
            write_run(root, "2apae", 0.001, snr, fold)
        write_run(root, "2apae", 0.0, 20, fold)      # α = 0 ablation at 20 dB only
        write_run(root, "gmp", 0.0, 20, fold)
    write_run(root, "gmp", 0.0, 0, 1)                 # a single fold at 0 dB
    write_run(root, "gap", 0.0, 20, 4, evaluated=False)  # still training: incomplete
    return root


def rows_of(csv_text):
    return {r[next(iter(r))]: r for r in csv.DictReader(io.StringIO(csv_text))}


def test_scan_runs_separates_incomplete(runs_dir, capsys):
    runs, incomplete = tables.scan_runs(runs_dir)
    assert len(runs) == 3 * (2 + 2 + 1 + 1) + 1 == 19
    assert incomplete == ["quick/gap_a0.0/snr20/fold4"]
    assert tables.collect_runs(runs_dir) == runs
    assert "quick/gap_a0.0/snr20/fold4" in capsys.readouterr().err


def test_table_iv_markdown(runs_dir):
    md, _ = tables.table_iv(tables.collect_runs(runs_dir))
    lines = md.splitlines()
    header = "| Model | 20 dB micro-P | 20 dB macro-P | 20 dB AUC | 0 dB micro-P | 0 dB macro-P | 0 dB AUC |"
    assert lines[2] == header
    # Paper order (GAP, GMP, 2APAE). Folds 1-3 give mean BASE + 0.02 and
    # sample std 0.01 (population std would print 0.0082). GMP at 0 dB has a
    # single fold (0.50 - 0.10 + 0.01 = 0.41): no ±. 2APAE uses α = 0.001
    # (0.72), not α = 0 (0.67). ▼: below 2APAE by more than 2 standard errors of the difference
    # (sqrt(0.01²/3 + 0.01²/3) = 0.0082); equal AUCs and single-run cells carry no mark.
    assert lines[4:7] == [
        "| GAP | 0.4200 ± 0.0100 (3) ▼ | 0.3700 ± 0.0100 (3) ▼ | 0.9200 ± 0.0100 (3) "
        "| 0.3200 ± 0.0100 (3) ▼ | 0.2700 ± 0.0100 (3) ▼ | 0.9200 ± 0.0100 (3) |",
        "| GMP | 0.5200 ± 0.0100 (3) ▼ | 0.4700 ± 0.0100 (3) ▼ | 0.9200 ± 0.0100 (3) "
        "| 0.4100 (1) | 0.3600 (1) | 0.9100 (1) |",
        "| 2APAE | 0.7200 ± 0.0100 (3) | 0.6700 ± 0.0100 (3) | 0.9200 ± 0.0100 (3) "
        "| 0.6200 ± 0.0100 (3) | 0.5700 ± 0.0100 (3) | 0.9200 ± 0.0100 (3) |",
    ]
    loc = md[md.index("localisation (beyond the paper)"):].splitlines()
    assert loc[2] == ("| Model | 20 dB seg-F1 | 20 dB event-F1 | 20 dB PSDS1 "
                      "| 0 dB seg-F1 | 0 dB event-F1 | 0 dB PSDS1 |")
    # GAP fold 3 at 20 dB has no localisation block: folds 1-2 only,
    # mean 0.515, sample std 0.00707.
    assert loc[4].startswith("| GAP | 0.5150 ± 0.0071 (2) | 0.3150 ± 0.0071 (2) | 0.2150 ± 0.0071 (2) | 0.5200 ± 0.0100 (3)")
    assert "2APAE at α = 0.001" in md and "Preset `quick`" in md


def test_table_iv_csv(runs_dir):
    _, text = tables.table_iv(tables.collect_runs(runs_dir))
    rows = rows_of(text)
    assert list(rows) == ["gap", "gmp", "2apae"]
    assert next(csv.reader(io.StringIO(text)))[:4] == [
        "model", "snr20_micro_ap_mean", "snr20_micro_ap_std", "snr20_micro_ap_n"]
    gap = rows["gap"]
    assert float(gap["snr20_micro_ap_mean"]) == pytest.approx(0.42, abs=1e-12)
    assert float(gap["snr20_micro_ap_std"]) == pytest.approx(0.01, abs=1e-12)
    assert gap["snr20_micro_ap_n"] == "3"
    assert gap["snr20_segment_f1_n"] == "2"
    assert float(gap["snr0_psds1_mean"]) == pytest.approx(0.22, abs=1e-12)
    gmp = rows["gmp"]
    assert (gmp["snr0_micro_ap_std"], gmp["snr0_micro_ap_n"]) == ("", "1")
    assert float(rows["2apae"]["snr0_macro_auc_mean"]) == pytest.approx(0.92, abs=1e-12)


def test_table_v(runs_dir):
    md, text = tables.table_v(tables.collect_runs(runs_dir))
    lines = md.splitlines()
    assert lines[2].startswith("| 2APAE | 20 dB micro-P |")
    # α ascending; α = 0 was only run at 20 dB -> dashes at 0 dB.
    # 0.67 vs 0.72: 0.05 > 2 x 0.0082 -> ▼
    assert lines[4] == ("| α = 0.0 | 0.6700 ± 0.0100 (3) ▼ | 0.6200 ± 0.0100 (3) ▼ | 0.9200 ± 0.0100 (3) "
                        "| – | – | – |")
    assert lines[5].startswith("| α = 0.001 | 0.7200 ± 0.0100 (3) |")
    rows = rows_of(text)
    assert list(rows) == ["0.0", "0.001"]
    assert rows["0.0"]["snr0_micro_ap_n"] == "0" and rows["0.0"]["snr0_micro_ap_mean"] == ""


def test_write_tables(runs_dir, tmp_path):
    out = tmp_path / "tables"
    md = tables.write_tables(runs_dir, out)
    assert sorted(p.name for p in out.iterdir()) == [
        "table_iv.csv", "table_iv.md", "table_iv.png", "table_v.csv", "table_v.md"]
    assert (out / "table_iv.png").read_bytes()[:4] == b"\x89PNG"
    assert "Table IV" in md and "Table V" in md
    assert "Incomplete runs (no eval_test.json, not included): quick/gap_a0.0/snr20/fold4" in md
    assert (out / "table_iv.md").read_text() in md


def test_presets_must_not_mix(runs_dir):
    write_run(runs_dir, "gap", 0.0, 20, 1, preset="paper")
    runs = tables.collect_runs(runs_dir)
    with pytest.raises(ValueError, match=r"several presets \['paper', 'quick'\]"):
        tables.table_iv(runs)
    md, _ = tables.table_iv(runs, preset="paper")
    assert "| GAP | 0.4100 (1) |" in md and "GMP" not in md
    with pytest.raises(ValueError, match="no runs with preset 'nope'"):
        tables.table_v(runs, preset="nope")


def test_duplicate_cell_is_an_error(runs_dir):
    dup = runs_dir / "rerun"
    write_run(dup, "gmp", 0.0, 20, 2)
    with pytest.raises(ValueError, match=r"two runs for the same cell \(row 'gmp', SNR 20, fold 2, seed 0\)"):
        tables.table_iv(tables.collect_runs(runs_dir))


@pytest.mark.parametrize(
    "config, match",
    [
        ({"model": "gap", "snr": 20, "test_fold": 1, "alpha": 0.0}, r"missing required key\(s\) \['preset'\]"),
        ({"model": "cnn", "snr": 20, "test_fold": 1, "alpha": 0.0, "preset": "q"}, "unknown model 'cnn'"),
        ({"model": "gap", "snr": "loud", "test_fold": 1, "alpha": 0.0, "preset": "q"}, "must be numbers"),
    ],
)
def test_malformed_run_config(tmp_path, config, match):
    d = tmp_path / "run"
    d.mkdir()
    (d / "run_config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=match):
        tables.scan_runs(tmp_path)


def test_malformed_eval_json(tmp_path):
    d = write_run(tmp_path, "gap", 0.0, 20, 1)
    (d / "eval_test.json").write_text("{not json")
    with pytest.raises(ValueError, match="eval_test.json: not valid JSON"):
        tables.scan_runs(tmp_path)
    (d / "eval_test.json").write_text(json.dumps({"clip": {"micro_ap": "high"}}))
    with pytest.raises(ValueError, match="clip.micro_ap must be a number"):
        tables.table_iv(tables.collect_runs(tmp_path))


def test_significance_is_two_standard_errors_of_the_difference():
    # se = sqrt(0.03²/3 + 0.04²/4) = sqrt(0.0003 + 0.0004) = 0.026458; 2 se = 0.052915
    assert tables.significance((0.60, 0.03, 3), (0.547, 0.04, 4)) == " ▲"   # +0.053
    assert tables.significance((0.60, 0.03, 3), (0.548, 0.04, 4)) == ""     # +0.052
    assert tables.significance((0.548, 0.04, 4), (0.60, 0.03, 3)) == ""
    assert tables.significance((0.50, 0.03, 3), (0.60, 0.04, 4)) == " ▼"
    assert tables.significance((0.10, float("nan"), 1), (0.90, 0.01, 3)) == ""  # one run: no test


def test_seeds_are_samples_and_variants_are_rows(tmp_path):
    """Seeded runs of one fold (the cpu_table grid) aggregate as mean ± std over seeds; a 2APAE
    with another time attention is its own row; marks follow the 2-SE rule."""
    root = tmp_path / "runs"
    values = {("2apae", "released_code"): (0.60, 0.62, 0.64), ("gap", "released_code"): (0.50, 0.60, 0.70),
              ("gmp", "released_code"): (0.40, 0.41, 0.42), ("2apae", "content"): (0.70, 0.71, 0.72)}
    for (model, form), micro in values.items():
        for seed, v in enumerate(micro):
            d = root / f"{model}-{form}" / f"seed{seed}"
            d.mkdir(parents=True)
            alpha = 0.001 if model == "2apae" else 0.0
            (d / "run_config.json").write_text(json.dumps(
                {"model": model, "snr": 20, "test_fold": 1, "alpha": alpha, "preset": "cpu_small",
                 "seed": seed, "model_config": {"attention_form": form}}))
            (d / "eval_test.json").write_text(json.dumps({"clip": {"micro_ap": v, "macro_ap": v, "macro_auc": v}}))
    md, text = tables.table_iv(tables.collect_runs(root))
    lines = {line.split(" | ")[0]: line for line in md.split("localisation")[0].splitlines() if line.startswith("| ")}
    # 2APAE: mean 0.62, std 0.02. GAP: mean 0.60, std 0.10 -> se 0.0589: no mark. GMP 0.41 ± 0.01
    # -> se 0.0129, 0.21 below: ▼. Content: 0.71 ± 0.01, 0.09 above: ▲.
    assert lines["| 2APAE"].startswith("| 2APAE | 0.6200 ± 0.0200 (3) |")
    assert lines["| GAP"].startswith("| GAP | 0.6000 ± 0.1000 (3) |")
    assert lines["| GMP"].startswith("| GMP | 0.4100 ± 0.0100 (3) ▼ |")
    assert lines["| 2APAE (content)"].startswith("| 2APAE (content) | 0.7100 ± 0.0100 (3) ▲ |")
    assert list(rows_of(text)) == ["gap", "gmp", "2apae", "2apae:content"]
    # Two runs of one seed are one cell twice: refused.
    dup = root / "again"
    dup.mkdir()
    (dup / "run_config.json").write_text((root / "gmp-released_code" / "seed0" / "run_config.json").read_text())
    (dup / "eval_test.json").write_text(json.dumps({"clip": {"micro_ap": 0.4}}))
    with pytest.raises(ValueError, match="two runs for the same cell.*seed 0"):
        tables.table_iv(tables.collect_runs(root))
