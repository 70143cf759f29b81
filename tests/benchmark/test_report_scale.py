"""Reports at scale: exact co-occurrence counts from float32 products, per-class F1/AP in report.json (checked
against scikit-learn, as the reference computes them), "too little data" instead of noise, and metrics that do
not depend on the block sizes used to bound their memory."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score

import benchmark.metrics as bm
from benchmark import LabelSet, ModelPredictions, evaluate
from benchmark.io import predictions_from_mapping
from benchmark.metrics import topk_cells, topk_masks
from benchmark.report import PER_CLASS_MIN_SUPPORT, cooccurrence_matrix, write_report
from benchmark.synthetic import synthetic_predictions

ev = importlib.import_module("benchmark.evaluate")  # the package exports a function of that name


@pytest.mark.parametrize(("method", "chunk"), [("auto", 32_768), ("pairs", 0), ("float32", 7), ("float32", 32_768)])
def test_cooccurrence_counts_are_exactly_the_integer_product(sample_labels, method, chunk):
    T = sample_labels.truth("all").astype(np.int64)
    got = cooccurrence_matrix(sample_labels, chunk=chunk, method=method)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, T.T @ T)
    assert got.sum() > np.trace(got)  # the sample really has clips with several classes
    assert (T.sum(1) >= 3).any()  # and clips with three or more (pairs at offsets > 1)


def test_topk_cells_are_the_cells_of_the_masks_in_any_block_size():
    rng = np.random.default_rng(0)
    S = np.round(rng.standard_normal((500, 37)), 1)  # many ties across the top-k boundary
    rows = rng.permutation(500)[:321]
    want = topk_masks(S[rows], (1, 3, 5, 10))
    for block in (1, 13, 8192):
        cells, top1 = topk_cells(S, (1, 3, 5, 10), block=block, rows=rows)
        for k, mask in want.items():
            np.testing.assert_array_equal(cells[k], np.flatnonzero(mask))
        np.testing.assert_array_equal(top1, np.argsort(S[rows], axis=1)[:, -1])


def _models(labels, classes):
    return [
        predictions_from_mapping(
            synthetic_predictions(labels, seed=5, skill=3, float32=True), classes, name="cav-mae", source="s"
        ),
        predictions_from_mapping(
            synthetic_predictions(labels, seed=6, kind="labels", skill=4), classes, name="gemini-1.5-flash", source="g"
        ),
    ]


def test_metrics_do_not_depend_on_the_memory_bounding_block_sizes(sample_labels, classes, monkeypatch):
    models = _models(sample_labels, classes)
    want = evaluate(sample_labels, models, regime="all")
    monkeypatch.setattr(bm, "TOPK_ROW_BLOCK", 5)
    monkeypatch.setattr(bm, "AUC_CLASS_BLOCK", 3)
    monkeypatch.setattr(ev, "TRUTH_ROW_BLOCK", 11)
    monkeypatch.setattr(bm.topk_cells, "__defaults__", (bm.TOP_KS,))  # keyword defaults are read at call time
    monkeypatch.setattr(bm.topk_cells, "__kwdefaults__", {"top1": True, "block": 5, "rows": None})
    assert evaluate(sample_labels, models, regime="all") == want


def test_per_class_f1_and_ap_in_report_json_match_scikit_learn(sample_labels, classes, tmp_path):
    models = _models(sample_labels, classes)
    rep = write_report(tmp_path, sample_labels, models, regime="all", meta=False)
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk["per_class"] == rep["per_class"]
    per_class = on_disk["per_class"]
    assert set(per_class) == {"cav-mae", "gemini-1.5-flash"}
    assert set(per_class["cav-mae"]) == {"a", "v", "av", "a only", "v only"}
    scored, listed = models
    idx = {v: i for i, v in enumerate(scored.video_ids)}
    lidx = {v: i for i, v in enumerate(listed.video_ids)}
    checked = 0
    for subset, inp in (("av", "av"), ("a", "a"), ("v only", "v")):
        T = sample_labels.truth(subset)
        present = T.any(axis=1)
        # the reference keeps the subset's clips the model scored (scores) or all of them (label sets)
        vids = [v for v, p in zip(sample_labels.video_ids, present) if p]
        rows = [i for i, (v, p) in enumerate(zip(sample_labels.video_ids, present)) if p and v in idx]
        S = scored.scores[inp][[idx[sample_labels.video_ids[r]] for r in rows]]
        top1 = np.zeros(S.shape, dtype=int)
        top1[np.arange(len(rows)), np.argmax(S, axis=1)] = 1
        f1_ref = f1_score(T[rows], top1, average=None, zero_division=0)
        P = np.zeros((len(vids), len(classes)), dtype=int)
        for r, v in enumerate(vids):
            if v in lidx:
                P[r] = listed.labels[inp][lidx[v]]
        f1_lab = f1_score(T[present], P, average=None, zero_division=0)
        support = T[rows].sum(0)
        for j, name in enumerate(classes):
            got, lab = per_class["cav-mae"][subset][name], per_class["gemini-1.5-flash"][subset][name]
            assert got["support"] == int(support[j])
            assert lab["ap"] is None
            if support[j] < PER_CLASS_MIN_SUPPORT:
                assert got["f1"] is None and got["ap"] is None
                continue
            assert got["f1"] == pytest.approx(f1_ref[j])
            assert got["ap"] == pytest.approx(average_precision_score(T[rows][:, j], S[:, j]))
            assert lab["f1"] == pytest.approx(f1_lab[j])
            checked += 1
        notes = on_disk["per_class_notes"]
        assert notes["min_support"] == PER_CLASS_MIN_SUPPORT
        assert notes["too_little_data"]["cav-mae"][subset] == int((support < PER_CLASS_MIN_SUPPORT).sum())
    assert checked > 20
    assert on_disk["files"]["figure_per_class_f1"] == {"png": "per_class_f1.png", "svg": "per_class_f1.svg"}
    svg = (tmp_path / "per_class_f1.svg").read_text()
    assert "cav-mae: per-class F1" in svg and "classes with too little data left out" in svg


def test_small_data_says_too_little_data_instead_of_drawing_noise(classes, tmp_path):
    n = 6
    one_label = np.zeros((n, len(classes)), dtype=bool)
    one_label[np.arange(n), np.arange(n)] = True  # every clip has one class: nothing co-occurs
    none = np.zeros_like(one_label)
    meta = {k: np.zeros(n, dtype=bool) for k in ("background_music", "static_image", "voice_over")}
    labels = LabelSet(np.array([f"c{i}" for i in range(n)], dtype=object), list(classes), none, none, one_label, meta)
    rng = np.random.default_rng(1)
    scores = {inp: rng.standard_normal((n, len(classes))).astype(np.float32) for inp in ("a", "v", "av")}
    rep = write_report(tmp_path, labels, [ModelPredictions("tiny", labels.video_ids, list(classes), scores=scores)])
    assert all(v["f1"] is None and v["ap"] is None for v in rep["per_class"]["tiny"]["av"].values())
    assert rep["per_class_notes"]["too_little_data"]["tiny"]["av"] == len(classes)
    assert "too little data" in (tmp_path / "per_class_f1.svg").read_text()
    assert "too little data: no two classes share a clip" in (tmp_path / "cooccurrence.svg").read_text()
    assert (tmp_path / "cooccurrence.png").read_bytes()[:4] == b"\x89PNG"
