"""Proposal strategy core on hand-built cases (no database)."""

import json

import numpy as np
import pytest

from proposals.core.strategy import (
    COMMON_CLASSES,
    ConsensusConfig,
    Predictions,
    Strategy,
    StrategyError,
    apply_strategy,
    global_ranks,
    labels_to_matrix,
    within_clip_ranks,
)

NAMES = ["dog", "cat", "car", "rain", "wind"]


def names_of(res, i):
    return sorted(np.array(res.class_names)[res.proposed[i]])


def plain(**kw):
    """A strategy with only what the test names switched on."""
    base = dict(
        original_label=False,
        topk={},
        common_classes=[],
        label_set_models=False,
        consensus=ConsensusConfig(k=0, global_n=0, min_models=2),
    )
    base.update(kw)
    return Strategy(**base)


def test_topk_per_modality_and_per_model_override():
    a = np.array([[5, 4, 3, 2, 1], [0, 0, 1, 9, 8]], dtype=np.float32)
    v = np.array([[1, 2, 9, 0, 0], [9, 0, 0, 0, 1]], dtype=np.float32)
    preds = Predictions(NAMES, ["c0", "c1"], scores={"m": {"a": a, "v": v}})
    res = apply_strategy(plain(topk={"a": 2, "v": 1}), preds)
    assert names_of(res, 0) == ["car", "cat", "dog"]
    assert names_of(res, 1) == ["dog", "rain", "wind"]
    res = apply_strategy(plain(topk={"a": 2, "v": 1}, topk_per_model={"m": {"a": 1}}), preds)
    assert names_of(res, 0) == ["car", "dog"]


def test_original_label_and_common_classes_always_proposed():
    s = np.zeros((2, 5), dtype=np.float32)
    orig = labels_to_matrix(["c0", "c1"], NAMES, {"c0": ["cat"], "c1": ["car"]})
    preds = Predictions(NAMES, ["c0", "c1"], scores={"m": {"a": s}}, original=orig)
    res = apply_strategy(plain(original_label=True, common_classes=["wind"]), preds)
    assert names_of(res, 0) == ["cat", "wind"]
    assert names_of(res, 1) == ["car", "wind"]
    with pytest.raises(StrategyError, match="unknown class name 'thunder'"):
        apply_strategy(plain(common_classes=["thunder"]), preds)


def test_consensus_needs_agreement_of_distinct_models():
    # k=1 pool: model x says dog (a) and cat (v); model y says cat (a); model z says rain
    x_a = np.array([[9, 0, 0, 0, 0]], dtype=np.float32)
    x_v = np.array([[0, 9, 0, 0, 0]], dtype=np.float32)
    y_a = np.array([[0, 9, 0, 0, 0]], dtype=np.float32)
    z_a = np.array([[0, 0, 0, 9, 0]], dtype=np.float32)
    preds = Predictions(NAMES, ["c0"], scores={"x": {"a": x_a, "v": x_v}, "y": {"a": y_a}, "z": {"a": z_a}})
    cons = ConsensusConfig(k=1, global_n=0, min_models=2)
    res = apply_strategy(plain(consensus=cons), preds)
    assert names_of(res, 0) == ["cat"]  # dog only by x (one model on two modalities does not count twice)
    # the same model agreeing with itself across modalities is not consensus
    preds2 = Predictions(NAMES, ["c0"], scores={"x": {"a": x_a, "v": x_a.copy()}, "z": {"a": z_a}})
    assert names_of(apply_strategy(plain(consensus=cons), preds2), 0) == []
    # restricting the consensus to models x and z removes the cat agreement
    cons_xz = ConsensusConfig(k=1, global_n=0, min_models=2, models=["x", "z"])
    assert names_of(apply_strategy(plain(consensus=cons_xz), preds), 0) == []
    cons1 = ConsensusConfig(k=1, global_n=0, min_models=1)
    assert names_of(apply_strategy(plain(consensus=cons1), preds), 0) == ["cat", "dog", "rain"]


def test_consensus_global_top_n_adds_high_scores_beyond_k():
    # clip c0: 'car' is only third within the clip but its score is among the 2 highest in the
    # whole matrix of both models -> pooled by both -> proposed
    m = np.array([[10, 9, 8, 0, 0], [1, 1, 2, 0, 0]], dtype=np.float32)
    preds = Predictions(NAMES, ["c0", "c1"], scores={"p": {"a": m}, "q": {"v": m.copy()}})
    cons = ConsensusConfig(k=1, global_n=3, min_models=2)
    res = apply_strategy(plain(consensus=cons), preds)
    assert names_of(res, 0) == ["car", "cat", "dog"]
    assert names_of(res, 1) == ["car"]  # k=1 only
    cons_small = ConsensusConfig(k=1, global_n=2, min_models=2)
    assert names_of(apply_strategy(plain(consensus=cons_small), preds), 0) == ["cat", "dog"]


def test_ties_break_to_lower_class_index_and_earlier_clip():
    s = np.array([[1, 3, 3, 3, 0], [3, 0, 0, 0, 0]], dtype=np.float32)
    r = within_clip_ranks(s)
    assert r[0].tolist() == [3, 0, 1, 2, 4]
    g = global_ranks(s, 2)
    assert sorted(zip(*np.nonzero(g < 2))) == [(0, 1), (0, 2)]


def test_provenance_names_rule_model_and_modality():
    a = np.array([[9, 1, 0, 0, 0]], dtype=np.float32)
    b = np.array([[9, 0, 1, 0, 0]], dtype=np.float32)
    orig = labels_to_matrix(["c0"], NAMES, {"c0": ["dog"]})
    preds = Predictions(NAMES, ["c0"], scores={"m1": {"a": a}, "m2": {"av": b}}, original=orig)
    s = plain(
        original_label=True,
        topk={"a": 1, "av": 1},
        common_classes=["wind"],
        consensus=ConsensusConfig(k=1, global_n=0, min_models=2),
    )
    prov = apply_strategy(s, preds).proposals_for("c0")
    assert set(prov) == {"dog", "wind"}
    dog = {(p["rule"], p["model"], p["modality"]) for p in prov["dog"]}
    assert dog == {
        ("original", None, None),
        ("topk", "m1", "a"),
        ("topk", "m2", "av"),
        ("consensus", "m1", "a"),
        ("consensus", "m2", "av"),
    }
    assert prov["wind"] == [{"rule": "common", "model": None, "modality": None}]
    # what the database stores: the same rows, each provenance as JSON text (encoded once per distinct set)
    result = apply_strategy(s, preds)
    stored = [(vid, name, json.loads(text)) for vid, name, text in result.records_json()]
    assert stored == list(result.records())


def test_label_set_models_propose_and_vote():
    sets = {"gemini": {"av": labels_to_matrix(["c0"], NAMES, {"c0": ["rain"]})}}
    s = np.array([[0, 0, 0, 9, 0]], dtype=np.float32)
    preds = Predictions(NAMES, ["c0"], scores={"m": {"a": s}}, label_sets=sets)
    res = apply_strategy(plain(label_set_models=True), preds)
    assert names_of(res, 0) == ["rain"]
    res = apply_strategy(plain(consensus=ConsensusConfig(k=1, global_n=0, min_models=2)), preds)
    assert names_of(res, 0) == ["rain"]
    assert {p["rule"] for p in res.proposals_for("c0")["rain"]} == {"consensus"}


def test_default_strategy_is_vggsounder_recipe_and_round_trips_json():
    s = Strategy()
    assert s.topk == {"a": 5, "v": 1, "av": 1}
    assert (s.consensus.k, s.consensus.global_n, s.consensus.min_models) == (10, 60000, 2)
    assert s.common_classes == list(COMMON_CLASSES) and len(COMMON_CLASSES) == 8
    assert s.original_label
    s2 = Strategy.from_json(s.to_json())
    assert s2 == s
    partial = Strategy.from_dict({"consensus": {"global_n": 100}})
    assert partial.consensus.global_n == 100 and partial.consensus.k == 10


@pytest.mark.parametrize(
    "data, message",
    [
        ({"topk": {"x": 1}}, "unknown modality 'x'"),
        ({"topk": {"a": -1}}, r"topk\.a must be an integer >= 0"),
        ({"pool": 3}, r"unknown strategy key\(s\) \['pool'\]"),
        ({"consensus": {"agree": 2}}, r"unknown strategy.consensus key\(s\) \['agree'\]"),
        ({"consensus": {"min_models": 0}}, "min_models must be >= 1"),
    ],
)
def test_bad_strategy_is_refused_with_the_reason(data, message):
    with pytest.raises(StrategyError, match=message):
        Strategy.from_dict(data)
    with pytest.raises(StrategyError, match="not valid JSON"):
        Strategy.from_json("{topk:")


def test_bad_predictions_are_refused_with_the_reason():
    with pytest.raises(StrategyError, match=r"shape \(2, 4\), expected \(2, 5\)"):
        Predictions(NAMES, ["c0", "c1"], scores={"m": {"a": np.zeros((2, 4))}})
    bad = np.zeros((1, 5), dtype=np.float32)
    bad[0, 2] = np.nan
    with pytest.raises(StrategyError, match="NaN"):
        Predictions(NAMES, ["c0"], scores={"m": {"a": bad}})
    with pytest.raises(StrategyError, match="unknown modality"):
        Predictions(NAMES, ["c0"], scores={"m": {"audio": np.zeros((1, 5))}})
    with pytest.raises(StrategyError, match=r"unknown class name\(s\): 'thunder' \(1x\)"):
        labels_to_matrix(["c0"], NAMES, {"c0": ["thunder"]})
    preds = Predictions(NAMES, ["c0"], scores={"m": {"a": np.zeros((1, 5))}})
    with pytest.raises(StrategyError, match=r"consensus.models names unknown model\(s\) \['zz'\]"):
        apply_strategy(plain(consensus=ConsensusConfig(models=["zz"])), preds)


def test_records_cover_every_proposal_once():
    rng = np.random.default_rng(1)
    scores = {m: {mod: rng.standard_normal((20, 5)).astype(np.float32) for mod in ("a", "v")} for m in ("x", "y")}
    preds = Predictions(NAMES, [f"c{i}" for i in range(20)], scores=scores)
    res = apply_strategy(Strategy(common_classes=["wind"], consensus=ConsensusConfig(k=2, global_n=10)), preds)
    recs = list(res.records())
    assert len(recs) == int(res.proposed.sum())
    assert len({(v, c) for v, c, _ in recs}) == len(recs)
    assert all(prov for _, _, prov in recs)


def test_clips_a_model_did_not_cover_get_nothing_from_it():
    a = np.array([[9, 0, 0, 0, 0], [0, 9, 0, 0, 0]], dtype=np.float32)
    preds = Predictions(NAMES, ["c0", "c1"], scores={"m": {"a": a}}, coverage={"m": np.array([True, False])})
    res = apply_strategy(plain(topk={"a": 1}, consensus=ConsensusConfig(k=1, global_n=2, min_models=1)), preds)
    assert names_of(res, 0) == ["dog"]
    assert names_of(res, 1) == []
