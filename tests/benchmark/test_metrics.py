"""Metric definitions on hand-computed cases (no reference needed)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from benchmark import BenchmarkInputError, LabelSet, ModelPredictions, evaluate, metric_table
from benchmark.metrics import auc_macro, label_set_metrics, modality_confusion, top1_index, topk_masks

CLASSES = ["dog barking", "cat meowing", "playing piano", "rain"]


def labels_csv(rows):
    header = "video_id,label,modality,background_music,static_image,voice_over\n"
    return io.StringIO(header + "\n".join(rows) + "\n")


def test_label_set_metrics_hand_computed():
    truth = np.array([[1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], bool)
    pred = np.array([[1, 0, 0, 1], [0, 0, 1, 0], [0, 0, 0, 0]], bool)
    m = label_set_metrics(truth, pred)
    # TP=2 (dog, piano), FP=1 (rain on clip 0), FN=2 (cat, rain on clip 2)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 4)
    assert m["f1"] == pytest.approx(4 / 7)
    assert m["jaccard"] == pytest.approx(2 / 5)
    assert m["accuracy"] == pytest.approx(1 / 3)  # only clip 1 matches exactly
    assert m["hit_rate"] == pytest.approx(2 / 3)
    # per class F1: dog 1, cat 0, piano 1, rain 0 (tp 0, fp 1, fn 1)
    assert m["f1_macro"] == pytest.approx(0.5)


def test_macro_f1_counts_absent_classes_as_zero():
    truth = np.array([[1, 0, 0, 0]], bool)
    m = label_set_metrics(truth, truth.copy())
    assert m["f1"] == 1.0
    assert m["f1_macro"] == pytest.approx(0.25)  # 3 of 4 classes never occur


@pytest.mark.parametrize("ties", [False, True])
def test_auc_matches_per_class_definition(ties):
    rng = np.random.default_rng(0)
    n, C = 300, 12
    truth = rng.random((n, C)) < 0.1
    truth[:, 0] = False  # no positive: left out
    scores = rng.normal(size=(n, C)) + truth
    if ties:
        scores = np.round(scores)
    rows = rng.random(n) < 0.7
    roc, ap = auc_macro(truth[rows], scores[rows])
    want_roc = [roc_auc_score(truth[rows, c], scores[rows, c]) for c in range(1, C) if truth[rows, c].any()]
    want_ap = [average_precision_score(truth[rows, c], scores[rows, c]) for c in range(1, C) if truth[rows, c].any()]
    assert roc == pytest.approx(np.mean(want_roc), abs=1e-12)
    assert ap == pytest.approx(np.mean(want_ap), abs=1e-12)
    # a class whose clips are all positive: ROC AUC undefined (nan, as scikit-learn reports it), AP 1.0
    truth[:, 1] = True
    roc, ap = auc_macro(truth[rows], scores[rows])
    assert np.isnan(roc)
    want_ap[0] = 1.0
    assert ap == pytest.approx(np.mean(want_ap), abs=1e-12)


def test_top_k_breaks_ties_like_argsort():
    rng = np.random.default_rng(1)
    scores = np.round(rng.normal(size=(500, 20)), 0)  # many ties, also across the top-k boundary
    masks = topk_masks(scores, (1, 3, 5, 10, 25))
    order = np.argsort(scores, axis=1)
    for k, mask in masks.items():
        want = np.zeros_like(mask)
        np.put_along_axis(want, order[:, -k:], True, axis=1)
        assert (mask == want).all(), k
        assert (mask.sum(axis=1) == min(k, 20)).all()
    assert (top1_index(scores) == order[:, -1]).all()


def test_modality_confusion_counts_unimodal_success_with_av_failure():
    hit_a = np.array([1, 1, 0, 0, 1], bool)
    hit_v = np.array([1, 0, 1, 0, 1], bool)
    hit_av = np.array([0, 0, 0, 0, 1], bool)
    mu = modality_confusion(hit_a, hit_v, hit_av)
    assert mu == {"a": 2 / 5, "v": 2 / 5, "av": 1 / 5}


def small_labels():
    return LabelSet.from_csv(
        labels_csv(
            [
                "c1,dog barking,AV,False,False,False",
                "c1,rain,A,False,False,False",
                "c2,cat meowing,V,False,True,False",
                "c3,playing piano,A,True,False,False",
            ]
        ),
        CLASSES,
    )


def test_subsets_follow_modality_tags():
    L = small_labels()
    names = lambda T: [sorted(np.array(CLASSES)[row].tolist()) for row in T]  # noqa: E731
    assert names(L.truth("a")) == [["dog barking", "rain"], [], ["playing piano"]]
    assert names(L.truth("v")) == [["dog barking"], ["cat meowing"], []]
    assert names(L.truth("av")) == [["dog barking"], [], []]
    assert names(L.truth("a only")) == [["rain"], [], ["playing piano"]]
    assert names(L.truth("v only")) == [[], ["cat meowing"], []]
    assert L.meta["static_image"].tolist() == [False, True, False]


def test_default_regime_leaves_out_background_music_and_missing_clips_are_empty_sets():
    L = small_labels()
    lab = {
        "c1": {"a": ["dog barking", "rain"], "v": ["dog barking"], "av": ["dog barking"]},
        "c3": {"a": ["playing piano"], "v": [], "av": []},
    }  # c2 missing
    m = ModelPredictions.from_label_lists("toy", lab, CLASSES)
    default = evaluate(L, [m], regime="default")["toy"]
    everything = evaluate(L, [m], regime="all")["toy"]
    # default: c3 (background music) left out -> subset a has only c1, perfectly predicted
    assert default["a"]["n_clips"] == 1 and default["a"]["accuracy"] == 1.0
    assert everything["a"]["n_clips"] == 2 and everything["a"]["accuracy"] == 1.0
    # v: c1 right, c2 has no prediction (empty set) -> hit rate 1/2
    assert default["v"]["hit_rate"] == pytest.approx(0.5)
    table = metric_table({"toy": default})
    assert table.loc["toy", ("hit_rate", "v")] == pytest.approx(50.0)  # x100 like the paper
    assert np.isnan(table.loc["toy", ("auc_roc", "a")])  # label sets have no AUC


def test_scored_model_uses_top_k_and_drops_clips_without_scores():
    L = small_labels()
    s = {
        "a": np.array([[0.9, 0.0, 0.1, 0.8], [0.0, 0.5, 0.2, 0.1]]),
        "v": np.array([[0.9, 0.0, 0.1, 0.8], [0.0, 0.5, 0.2, 0.1]]),
        "av": np.array([[0.1, 0.0, 0.9, 0.8], [0.0, 0.5, 0.2, 0.1]]),
    }
    m = ModelPredictions("toy", np.array(["c1", "c2"]), CLASSES, scores=s)
    res = evaluate(L, [m], regime="all")["toy"]
    assert res["a"]["n_clips"] == 1  # c3 has no scores: dropped, not counted as a miss
    assert res["a"]["hit_rate@1"] == 1.0 and res["a"]["accuracy@3"] == 0.0
    assert res["a"]["recall@3"] == 1.0
    # top-1: a and v hit on c1 (dog), av misses (piano); c2: v hits (cat), a and av also pick cat
    assert res["a"]["mu"] == pytest.approx(1 / 2)
    assert res["v"]["mu"] == pytest.approx(1 / 2)
    table = metric_table({"toy": res})
    assert table.loc["toy", ("f1", "a")] == table.loc["toy", ("f1@1", "a")]  # reference fallback


def test_pre_v1_confusion_judges_each_input_against_its_own_subset():
    L = small_labels()
    # c1: audio input predicts "rain" (audible only), AV input predicts piano (wrong)
    lab = {"c1": {"a": ["rain"], "v": ["rain"], "av": ["playing piano"]}}
    m = ModelPredictions.from_label_lists("toy", lab, CLASSES)
    v1 = evaluate(L, [m], regime="all")["toy"]
    legacy = evaluate(L, [m], regime="all", confusion="pre-v1.0")["toy"]
    # v1.0: every input is judged against all labels -> the visual input "hits" with rain
    assert v1["v"]["mu"] == pytest.approx(1 / 3)
    # pre-v1.0: the visual input is judged against visible labels only -> rain is no hit
    assert legacy["v"]["mu"] == 0.0
    assert legacy["a"]["mu"] == pytest.approx(1 / 3)
    with pytest.raises(BenchmarkInputError, match="allowed: v1.0, pre-v1.0"):
        evaluate(L, [m], confusion="v0.9")


def test_label_csv_errors_name_the_problem(classes):
    with pytest.raises(BenchmarkInputError, match="unknown class name.*'dog barkin'"):
        LabelSet.from_csv(labels_csv(["c1,dog barkin,AV,False,False,False"]), CLASSES)
    with pytest.raises(BenchmarkInputError, match="modality 'X' is not one of A, V, AV"):
        LabelSet.from_csv(labels_csv(["c1,rain,X,False,False,False"]), CLASSES)
    with pytest.raises(BenchmarkInputError, match="missing column.*voice_over"):
        LabelSet.from_dataframe(
            pd.DataFrame(
                {
                    "video_id": ["c"],
                    "label": ["rain"],
                    "modality": ["A"],
                    "background_music": ["False"],
                    "static_image": ["False"],
                }
            ),
            CLASSES,
        )
    with pytest.raises(BenchmarkInputError, match="unknown regime 'weird'; allowed: default, all"):
        evaluate(small_labels(), [], regime="weird")


def test_library_never_imports_django():
    import subprocess
    import sys

    code = (
        "import sys; import benchmark, benchmark.io, benchmark.report, benchmark.judge, benchmark.fastpickle; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'annotation', 'proposals')); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2]),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("confusion", ["v1.0", "pre-v1.0"])
def test_a_model_prepared_once_gives_each_clip_selection_the_numbers_of_evaluating_it_alone(sample_labels, confusion):
    """The meta-label breakdown prepares a model once on all clips and then counts over each selection;
    every number must be what the primitives give on the selected clips alone (ties in the scores, clips
    without scores, a selection with no scored clip)."""
    from benchmark.evaluate import META_FILTERS, ScoredModel
    from benchmark.io import predictions_from_mapping
    from benchmark.labels import SUBSET_INPUT, SUBSETS
    from benchmark.metrics import Positives, topk_metrics
    from benchmark.synthetic import synthetic_predictions

    labels = sample_labels
    model = predictions_from_mapping(
        synthetic_predictions(labels, seed=5, ties=True, coverage=0.8), labels.classes, name="m", source="m"
    )
    prepared = ScoredModel(labels, model, confusion=confusion, threads=2)
    scored = pd.Index(model.video_ids)
    masks = {name: labels.meta_mask(**flt) for name, flt in META_FILTERS.items()}
    masks["unscored only"] = ~pd.Index(labels.video_ids).isin(scored)
    for name, mask in masks.items():
        got = prepared.evaluate(mask)
        gt = labels.select(mask)
        idx = scored.get_indexer(pd.Index(gt.video_ids))
        rows = np.flatnonzero(idx >= 0)
        assert {s: r["n_clips"] for s, r in got.items()} == {
            s: int(gt.truth(s)[rows].any(axis=1).sum()) for s in SUBSETS
        }, name
        hits = {}
        for subset in SUBSETS:
            S = model.scores[SUBSET_INPUT[subset]][idx[rows]]
            T = gt.truth(subset)[rows]
            present = T.any(axis=1)
            pos = Positives(T[present])
            want = topk_metrics(pos, {k: m[present] for k, m in topk_masks(S).items()})
            want["auc_roc"], want["auc_pr"] = auc_macro(pos, S[present])
            for key, value in want.items():
                assert got[subset][key] == value or (np.isnan(value) and np.isnan(got[subset][key])), (
                    name,
                    subset,
                    key,
                )
        for inp in ("a", "v", "av"):
            against = gt.truth("all" if confusion == "v1.0" or inp == "av" else inp)[rows]
            hits[inp] = against[np.arange(rows.size), top1_index(model.scores[inp][idx[rows]])]
        mus = modality_confusion(hits["a"], hits["v"], hits["av"])
        for inp in ("a", "v", "av"):
            assert got[inp]["mu"] == mus[inp] or (np.isnan(mus[inp]) and np.isnan(got[inp]["mu"])), (name, inp)
