"""Report figures: what they show (read back from the SVG text and from their inputs, not from pixels), and the
helper processes that draw them give the same files as drawing in this process."""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from collections import Counter
from itertools import combinations

import numpy as np
import pytest
from PIL import Image

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


def _text_corners(svg_path) -> tuple[tuple[float, float], dict[str, list[tuple[float, float]]]]:
    """The SVG's size and, per text, the corners of its box as a viewer draws it: the font's measured width,
    ascent and descent at the text's size, placed by its ``x``/``y``, ``text-anchor`` and rotation."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    root = ET.parse(svg_path).getroot()
    width, height = (float(v) for v in root.get("viewBox").split()[2:])
    measure = TextToPath()
    boxes = {}
    for el in root.iter():
        if not el.tag.endswith("}text"):
            continue
        text = "".join(el.itertext())
        style = dict(part.strip().split(": ", 1) for part in el.get("style").split(";") if part.strip())
        size = float(style["font-size"].removesuffix("px"))
        w, h, d = measure.get_text_width_height_descent(text, FontProperties(family="DejaVu Sans", size=size), False)
        x0 = {"start": 0.0, "middle": -w / 2, "end": -w}[style.get("text-anchor", "start")]
        # rotated about its anchor: x="…" y="…" transform="rotate(a x y)", or transform="translate(x y) rotate(a)"
        transform = el.get("transform", "")
        angle = math.radians(float(re.search(r"rotate\((-?[\d.]+)", transform + "rotate(0)").group(1)))
        moved = re.search(r"translate\((-?[\d.]+) (-?[\d.]+)\)", transform)
        x, y = (float(v) for v in moved.groups()) if moved else (float(el.get("x")), float(el.get("y")))
        boxes[text] = [
            (x + u * math.cos(angle) - v * math.sin(angle), y + u * math.sin(angle) + v * math.cos(angle))
            for u in (x0, x0 + w)
            for v in (d, d - h)  # SVG's y grows downwards: the descent below the baseline, the ascent above
        ]
    return (width, height), boxes


def _inside(size, corners) -> bool:
    return all(0 <= x <= size[0] and 0 <= y <= size[1] for x, y in corners)


def _blank_border(png_path, px: int = 2) -> bool:
    """Nothing drawn in the outermost ``px`` pixels of the PNG (what a cut text leaves there)."""
    rgb = np.asarray(Image.open(png_path).convert("RGB"))
    border = np.concatenate([rgb[:px].reshape(-1, 3), rgb[-px:].reshape(-1, 3)])
    border = np.concatenate([border, rgb[:, :px].reshape(-1, 3), rgb[:, -px:].reshape(-1, 3)])
    return bool((border == 255).all())


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


def test_every_figure_is_whole(reports):
    helpers, _ = reports
    for stem in STEMS:
        assert _blank_border(helpers / f"{stem}.png"), stem
        size, boxes = _text_corners(helpers / f"{stem}.svg")
        assert {t for t, corners in boxes.items() if not _inside(size, corners)} == set(), stem


def test_the_longest_class_names_are_shown_whole(tmp_path, classes):
    """The 40 longest names of the taxonomy as the most frequent and most co-occurring classes, the first one
    longer still (slanted to the left of the first bar): every name inside both figures, PNG and SVG."""
    names = sorted(classes, key=len, reverse=True)[:40]
    names[0] = " / ".join(names[:3])
    counts = np.arange(len(classes), 0, -1) * 7
    figures.draw(
        "class_frequency",
        tmp_path,
        "class_frequency",
        {"av": counts // 2, "a": counts // 3, "v": counts - counts // 2 - counts // 3, "top_names": names, "clips": 9},
    )
    cond = np.random.default_rng(0).random((40, 40))
    np.fill_diagonal(cond, np.nan)
    figures.draw("cooccurrence", tmp_path, "cooccurrence", {"cond": cond, "names": names})
    for stem in ("class_frequency", "cooccurrence"):
        assert _blank_border(tmp_path / f"{stem}.png"), stem
        size, boxes = _text_corners(tmp_path / f"{stem}.svg")
        assert [n for n in names if n in boxes and _inside(size, boxes[n])] == names, stem
        assert _in_order(names, _texts(tmp_path / f"{stem}.svg"))


def _dots(svg_path) -> dict[str, list[tuple[float, float]]]:
    """The dots of the first panel of a per-class figure by colour, in drawing order, from the plotted lines
    (not the legend's): markers (``<use>`` elements) or short round-capped dashes (``M x y L x y`` in a path)."""
    dots: dict[str, list[tuple[float, float]]] = {}

    def line(group) -> tuple[str, list[tuple[float, float]]] | None:
        for el in group.iter():
            style = el.get("style") or ""
            if el.tag.endswith("}use") and "fill:" in style:
                color = re.search(r"fill: (#[0-9a-f]{6})", style).group(1)
                return color, [(float(u.get("x")), float(u.get("y"))) for u in group.iter() if u.tag.endswith("}use")]
            if el.tag.endswith("}path") and "stroke-linecap: round" in style:
                color = re.search(r"stroke: (#[0-9a-f]{6})", style).group(1)
                xy = np.array([float(v) for v in re.findall(r"-?\d+\.?\d*", el.get("d"))]).reshape(-1, 2, 2)
                return color, [tuple(p) for p in xy.mean(1)]
        return None

    def walk(el):
        gid = el.get("id") or ""
        if gid.startswith("legend_"):
            return
        if gid.startswith("line2d_"):
            found = line(el)
            if found:
                dots.setdefault(*found)  # the first panel's
            return
        for child in el:
            walk(child)

    walk(ET.parse(svg_path).getroot())
    return dots


def test_per_class_dots_are_the_f1_values(reports):
    """The SVG draws one dot per class with an F1 value of the subsets that are not sorted, at heights in
    proportion to those values."""
    helpers, _ = reports
    rep = json.loads((helpers / "report.json").read_text())
    _, data = per_class_f1_data(rep["per_class"])
    panel = data["panels"][0]
    dots = _dots(helpers / "per_class_f1.svg")
    for subset, values in panel["lines"]:
        if subset == panel["key"]:
            continue
        xy = np.array(dots[figures.MODALITY_COLORS[subset]])
        shown = values[np.isfinite(values)]
        assert len(xy) == len(shown) > 10
        assert np.all(np.diff(xy[:, 0]) > 0)  # left to right, as the classes
        # SVG y grows downwards: y = a - b * F1 for every dot
        slope, icpt = np.polyfit(shown, xy[:, 1], 1)
        assert slope < 0 and np.allclose(xy[:, 1], icpt + slope * shown, atol=0.01)


def test_per_class_dots_are_all_drawn_in_the_png(tmp_path):
    """300 classes whose subset-a F1 is 40 and 60 in turn (the sorted av F1 from 90 down): 150 separate blue
    dots along each of two rows of the PNG, at a class's width (≈ 4 pixels) from the next but one."""
    n = 300
    a_f1 = np.where(np.arange(n) % 2, 60.0, 40.0)
    panel = {"model": "m", "key": "av", "left_out": 0, "lines": [("a", a_f1), ("av", np.linspace(90, 10, n))]}
    figures.draw("per_class_f1", tmp_path, "f1", {"panels": [panel]})
    rgb = np.asarray(Image.open(tmp_path / "f1.png").convert("RGB")).astype(int)
    blue = np.abs(rgb - [0x1F, 0x77, 0xB4]).sum(-1) < 40  # the "a" colour (antialiased edges aside)
    rows = np.flatnonzero(blue.any(1))
    bands = np.split(rows, np.flatnonzero(np.diff(rows) > 1) + 1)  # the legend's dot, F1 = 60, F1 = 40
    assert len(bands) == 3
    for band in bands[1:]:
        columns = blue[band].any(0)
        assert np.count_nonzero(np.diff(columns.astype(int)) == 1) == n // 2
