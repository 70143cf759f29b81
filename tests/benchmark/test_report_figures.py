"""Report figures: what they show (read back from the SVG text and from their inputs, not from pixels), and the
helper processes that draw them give the same files as drawing in this process."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter
from itertools import combinations

import numpy as np
import pytest

from benchmark import figures
from benchmark.io import predictions_from_mapping
from benchmark.labels import apply_regime
from benchmark.report import (
    class_frequency_data,
    cooccurrence_data,
    per_class_f1_data,
    write_report,
)
from benchmark.synthetic import synthetic_predictions

STEMS = ("radar", "delta_f1", "class_frequency", "cooccurrence", "per_class_f1")


def _models(sample_labels, classes):
    return [
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


@pytest.fixture(scope="module")
def reports(tmp_path_factory, sample_labels, classes):
    """The same report drawn in helper processes (the default) and in a thread of this process."""
    models = _models(sample_labels, classes)
    helpers = tmp_path_factory.mktemp("helpers")
    here = tmp_path_factory.mktemp("here")
    write_report(helpers, sample_labels, models)
    write_report(here, sample_labels, models, figure_processes=0)
    return helpers, here


def _texts(svg_path) -> list[str]:
    """The SVG's text, in document order (the figures keep text as text)."""
    root = ET.parse(svg_path).getroot()
    return ["".join(el.itertext()).strip() for el in root.iter() if el.tag.endswith("}text")]


def _in_order(wanted: list[str], texts: list[str]) -> bool:
    it = iter(texts)
    return all(any(w == t for t in it) for w in wanted)


def test_helper_processes_write_the_same_files_as_drawing_here(reports):
    helpers, here = reports
    for stem in STEMS:
        for ext in ("png", "svg"):
            a, b = (helpers / f"{stem}.{ext}").read_bytes(), (here / f"{stem}.{ext}").read_bytes()
            assert a == b, (stem, ext)
        assert (helpers / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert ET.parse(helpers / f"{stem}.svg").getroot().tag.endswith("svg")
    rep = json.loads((helpers / "report.json").read_text())
    assert {k: v for k, v in rep["files"].items() if k.startswith("figure_")} == {
        f"figure_{s}": {"png": f"{s}.png", "svg": f"{s}.svg"} for s in STEMS
    }


def test_class_frequency_names_the_most_frequent_classes_in_order(reports, sample_labels):
    helpers, _ = reports
    gt = apply_regime(sample_labels, "default")
    counts = Counter()
    for tags in (gt.has_a, gt.has_v, gt.has_av):
        for _, j in zip(*np.nonzero(tags)):
            counts[int(j)] += 1
    ranked = sorted(range(len(gt.classes)), key=lambda j: (-counts[j], j))  # ties in class order
    top = [gt.classes[j] for j in ranked[:40]]
    texts = _texts(helpers / "class_frequency.svg")
    assert _in_order(top, texts)
    assert f"Class frequency by modality, all {len(gt.classes)} classes ({len(gt)} clips)" in texts
    data = class_frequency_data(gt)
    assert data["top_names"] == top
    total = data["av"] + data["a"] + data["v"]
    assert total.tolist() == [counts[j] for j in ranked]  # every class, most frequent first


def test_cooccurrence_shows_the_classes_that_share_most_clips(reports, sample_labels):
    helpers, _ = reports
    gt = apply_regime(sample_labels, "default")
    T = gt.truth("all")
    both = Counter()
    for row in T:
        for i, j in combinations(np.flatnonzero(row).tolist(), 2):
            both[i, j] += 1
            both[j, i] += 1
    shared = Counter()
    for (i, _), c in both.items():
        shared[i] += c
    ranked = sorted(shared, key=lambda j: (-shared[j], j))[:40]
    kind, data = cooccurrence_data(gt)
    assert kind == "cooccurrence" and data["names"] == [gt.classes[j] for j in ranked]
    i, j = ranked[0], ranked[1]
    assert data["cond"][0, 1] == pytest.approx(both[i, j] / T[:, i].sum())  # P(column | row)
    assert np.isnan(np.diag(data["cond"])).all()
    texts = _texts(helpers / "cooccurrence.svg")
    assert _in_order(data["names"], texts)  # the x tick labels, left to right


def test_radar_delta_and_per_class_name_what_they_show(reports):
    helpers, _ = reports
    rep = json.loads((helpers / "report.json").read_text())
    radar = _texts(helpers / "radar.svg")
    assert {"cav-mae", "gemini_1.5", "f1", "hit_rate", "input av"} <= set(radar)
    delta = _texts(helpers / "delta_f1.svg")
    assert {"voice over", "static image", "subset av", "cav-mae"} <= set(delta)
    f1 = {c: v["f1"] for c, v in rep["per_class"]["cav-mae"]["av"].items()}
    shown = [c for c, v in f1.items() if v is not None]
    title = f"cav-mae: per-class F1, {len(shown)} classes sorted by av F1; {len(f1) - len(shown)} classes with"
    assert any(t.startswith(title) for t in _texts(helpers / "per_class_f1.svg"))
    kind, data = per_class_f1_data(rep["per_class"])
    panel = next(p for p in data["panels"] if p["model"] == "cav-mae")
    sorted_line = dict(panel["lines"])["av"]
    assert sorted_line.tolist() == pytest.approx(sorted((100 * f1[c] for c in shown), reverse=True))


def test_a_figure_that_fails_in_a_helper_says_why(tmp_path):
    with figures.FigurePool(1) as pool:
        bad = pool.submit("radar", tmp_path, "radar", {"models": ["m"], "metrics": ["f1"], "inputs": ["a"]})
        with pytest.raises(figures.FigureWorkerError, match="norm"):
            bad.result()
        ok = pool.submit("too_little_data", tmp_path, "note", {"title": "t", "message": "too little data"})
        assert ok.result() == {"png": "note.png", "svg": "note.svg"}  # the helper draws on after a failure
    assert "too little data" in (tmp_path / "note.svg").read_text()
    assert not (tmp_path / "radar.png").exists()


def test_an_error_while_figures_are_drawn_stops_the_helpers(tmp_path):
    with pytest.raises(KeyError):
        with figures.FigurePool(2) as pool:
            helper = pool._proc
            pool.submit("too_little_data", tmp_path, "note", {"title": "t", "message": "m"})
            raise KeyError("the evaluation failed")
    assert helper.poll() is not None  # stopped and reaped, not left running
    with pytest.raises(RuntimeError):
        pool.submit("too_little_data", tmp_path, "late", {"title": "t", "message": "m"})
