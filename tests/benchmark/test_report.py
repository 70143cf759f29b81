"""write_report: every table format and figure is written and agrees with the computed metrics."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest

from benchmark import evaluate, metric_table
from benchmark.io import predictions_from_mapping
from benchmark.report import table_to_latex, table_to_markdown, write_report
from benchmark.synthetic import synthetic_predictions


@pytest.fixture(scope="module")
def report(tmp_path_factory, sample_labels, classes):
    models = [
        predictions_from_mapping(
            synthetic_predictions(sample_labels, seed=1, skill=4), classes, name="cav-mae", source="cav-mae"
        ),
        predictions_from_mapping(
            synthetic_predictions(sample_labels, seed=2, kind="labels", skill=4),
            classes,
            name="gemini_1.5",
            source="gemini",
        ),
    ]
    out = tmp_path_factory.mktemp("report")
    rep = write_report(out, sample_labels, models, regime="default", params={"labels": "sample"})
    return out, rep, models


def test_report_json_matches_metrics(report, sample_labels):
    out, rep, models = report
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["params"]["regime"] == "default" and on_disk["params"]["labels"] == "sample"
    assert on_disk["labels"]["clips_in_regime"] == int((~sample_labels.meta["background_music"]).sum())
    assert on_disk["models"]["cav-mae"]["kind"] == "scores" and on_disk["models"]["gemini_1.5"]["kind"] == "labels"
    want = evaluate(sample_labels, models, regime="default")
    assert on_disk["results"]["cav-mae"]["av"]["f1@3"] == pytest.approx(want["cav-mae"]["av"]["f1@3"])
    assert on_disk["results"]["gemini_1.5"]["a only"]["f1"] == pytest.approx(want["gemini_1.5"]["a only"]["f1"])
    assert set(on_disk["meta_results"]) >= {"with voice_over", "neither"}


def test_tables_in_every_format(report, sample_labels):
    out, rep, models = report
    table = metric_table(evaluate(sample_labels, models, regime="default"))
    for stem in ("paper", "metrics", "topk", "meta_f1", "delta_f1"):
        for ext in ("csv", "md", "tex", "html"):
            assert (out / f"{stem}.{ext}").stat().st_size > 0, (stem, ext)
    csv = pd.read_csv(out / "paper.csv", index_col=0)
    assert csv.loc["cav-mae", "f1 av"] == pytest.approx(table.loc["cav-mae", ("f1", "av")], abs=1e-5)
    assert csv.loc["gemini_1.5", "mu v"] == pytest.approx(table.loc["gemini_1.5", ("mu", "v")], abs=1e-5)
    md = (out / "paper.md").read_text()
    assert "| cav-mae |" in md and f"{table.loc['cav-mae', ('f1', 'av')]:.2f}" in md
    tex = (out / "paper.tex").read_text()
    assert "\\begin{tabular}" in tex and "gemini\\_1.5" in tex and "\\multicolumn{5}{c}{f1}" in tex
    html = (out / "metrics.html").read_text()
    assert 'class="sortable metric-table"' in html and "data-value=" in html
    # label-set models have no AUC: shown as a dash, not as a number
    assert "–" in (out / "metrics.md").read_text()


def test_figures_png_and_svg(report):
    out, rep, _ = report
    for stem in ("radar", "delta_f1", "class_frequency", "cooccurrence"):
        png = (out / f"{stem}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000, stem
        root = ET.parse(out / f"{stem}.svg").getroot()
        assert root.tag.endswith("svg"), stem
        assert rep["files"][f"figure_{stem}"] == {"png": f"{stem}.png", "svg": f"{stem}.svg"}


def test_delta_table_sign(report):
    out, rep, _ = report
    delta = pd.read_csv(out / "delta_f1.csv", index_col=0)
    meta = pd.read_csv(out / "meta_f1.csv", index_col=0)
    got = delta.loc["cav-mae", "voice_over av"]
    want = meta.loc["cav-mae", "with voice_over av"] - meta.loc["cav-mae", "without voice_over av"]
    assert got == pytest.approx(want, abs=1e-4)


def test_formatters_escape_and_mark_missing():
    df = pd.DataFrame({"f1_x": [1.234, np.nan]}, index=pd.Index(["a&b", "c_d"], name="model"))
    assert "a\\&b" in table_to_latex(df) and "c\\_d" in table_to_latex(df)
    md = table_to_markdown(df)
    assert "| a&b | 1.23 |" in md and "| c_d | – |" in md
