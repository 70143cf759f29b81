"""Proposal evaluation and tuner on hand-built cases (no database)."""

import numpy as np
import pytest

from proposals.core.evaluation import Gold, SearchSpace, Trial, evaluate, pareto_front, pick, tune
from proposals.core.strategy import (
    ConsensusConfig,
    Predictions,
    Strategy,
    StrategyError,
    apply_strategy,
    labels_to_matrix,
)

NAMES = ["dog", "cat", "car", "rain", "wind"]


def test_recall_sizes_and_recall_per_rule_hand_computed():
    vids = ["c0", "c1", "c2"]
    a = np.array([[9, 8, 0, 0, 0], [0, 0, 9, 0, 0], [0, 0, 0, 9, 0]], dtype=np.float32)
    orig = labels_to_matrix(vids, NAMES, {"c0": ["car"], "c1": ["car"], "c2": ["dog"]})
    preds = Predictions(NAMES, vids, scores={"m": {"a": a}}, original=orig)
    s = Strategy(topk={"a": 1}, common_classes=["wind"], consensus=ConsensusConfig(k=0, global_n=0))
    res = apply_strategy(s, preds)
    # proposals: c0 {car, dog, wind}, c1 {car, wind}, c2 {dog, rain, wind}
    assert res.sizes().tolist() == [3, 2, 3]
    # gold on c0 and c1 only: c0 {dog, cat, wind}, c1 {car}; c2 has no gold
    gold = Gold.from_labels(preds, {"c0": ["dog", "cat", "wind"], "c1": ["car"], "unknown_clip": ["dog"]})
    rep = evaluate(res, gold)
    assert rep["n_gold_labels"] == 4 and rep["n_gold_clips"] == 2
    assert rep["recall"] == pytest.approx(3 / 4)  # cat missed
    assert rep["clip_recall_mean"] == pytest.approx((2 / 3 + 1) / 2)
    assert rep["mean_size"] == pytest.approx(8 / 3)
    assert rep["median_size"] == 3
    assert rep["recall_per_rule"] == {
        "original": pytest.approx(1 / 4),
        "topk": pytest.approx(2 / 4),
        "common": pytest.approx(1 / 4),
        "consensus": 0.0,
    }
    # dog only from topk, wind only from common; car (c1) from both original and topk
    assert rep["only_rule"] == {
        "original": 0.0,
        "topk": pytest.approx(1 / 4),
        "common": pytest.approx(1 / 4),
        "consensus": 0.0,
    }


def test_gold_with_unknown_class_is_refused():
    preds = Predictions(NAMES, ["c0"], scores={"m": {"a": np.zeros((1, 5))}})
    with pytest.raises(StrategyError, match="gold: unknown class name"):
        Gold.from_labels(preds, {"c0": ["thunder"]})


def test_pareto_front_and_pick():
    s = Strategy()
    trials = [Trial(s, 0.80, 10), Trial(s, 0.92, 20), Trial(s, 0.91, 25), Trial(s, 0.95, 30), Trial(s, 0.93, 18)]
    front = pareto_front(trials)
    assert [(t.recall, t.mean_size) for t in front] == [(0.80, 10), (0.93, 18), (0.95, 30)]
    chosen, met = pick(front, 0.90)
    assert met and (chosen.recall, chosen.mean_size) == (0.93, 18)
    chosen, met = pick(front, 0.99)
    assert not met and chosen.recall == 0.95


def _dataset(n=400, seed=0):
    rng = np.random.default_rng(seed)
    vids = [f"v{i}" for i in range(n)]
    names = [f"k{i}" for i in range(30)]
    truth = np.zeros((n, 30), dtype=bool)
    for i in range(n):
        truth[i, rng.choice(30, 3, replace=False)] = True
    scores = {
        m: {mod: (rng.standard_normal((n, 30)) + q * truth).astype(np.float32) for mod in ("a", "v", "av")}
        for m, q in (("x", 1.5), ("y", 2.5))
    }
    preds = Predictions(names, vids, scores=scores)
    gold = Gold(rows=np.arange(0, n, 4), labels=truth[::4])
    return preds, gold


def test_tuner_front_is_honest_and_pick_is_smallest_meeting_target():
    preds, gold = _dataset()
    base = Strategy(common_classes=[], original_label=False)
    space = SearchSpace(
        topk={"a": [0, 1, 3], "v": [0, 1], "av": [0, 1]}, consensus_k=[0, 3, 6], global_n=[0, 500], min_models=[2]
    )
    out = tune(preds, gold, base=base, space=space, target=0.9, n_random=30, seed=3)
    front, chosen = out["front"], out["chosen"]
    assert out["target_met"] and chosen.recall >= 0.9
    # no evaluated configuration reaches the target with smaller lists
    assert not [t for t in out["trials"] if t.recall >= 0.9 and t.mean_size < chosen.mean_size]
    # the front is strictly increasing in both size and recall
    assert all(a.mean_size <= b.mean_size and a.recall < b.recall for a, b in zip(front, front[1:]))
    # the reported figures are what applying the chosen strategy really gives
    rep = evaluate(apply_strategy(chosen.strategy, preds), gold)
    assert rep["recall"] == pytest.approx(chosen.recall)
    assert rep["mean_size"] == pytest.approx(chosen.mean_size)
    # it beats the base (VGGSounder-sized) strategy on size at equal or better target
    base_rep = evaluate(apply_strategy(base, preds), gold)
    assert chosen.mean_size <= base_rep["mean_size"]


def test_tuner_refuses_empty_gold():
    preds, _ = _dataset(n=8)
    with pytest.raises(StrategyError, match="no labels"):
        tune(preds, Gold(rows=np.arange(0), labels=np.zeros((0, 30), dtype=bool)))


def _label_lists(n=240, seed=0):
    """Three LLM-like label-list models (no scores): each lists ~70 % of a clip's true classes plus ~4 wrong ones of
    its own; the original label is one true class."""
    rng = np.random.default_rng(seed)
    vids = [f"v{i}" for i in range(n)]
    names = [f"k{i}" for i in range(40)]
    truth = np.zeros((n, 40), dtype=bool)
    for i in range(n):
        truth[i, rng.choice(40, 3, replace=False)] = True
    original = np.zeros_like(truth)
    for i in range(n):
        original[i, rng.choice(np.flatnonzero(truth[i]))] = True
    lists = {}
    for m in ("llm1", "llm2", "llm3"):
        noise = rng.random((n, 40)) < 0.1
        lists[m] = {"av": (truth & (rng.random((n, 40)) < 0.7)) | (noise & ~truth)}
    preds = Predictions(names, vids, label_sets=lists, original=original)
    return preds, Gold(rows=np.arange(0, n, 2), labels=truth[::2])


def test_tuner_searches_label_lists_models_agreement_original_and_common_classes():
    import json

    preds, gold = _label_lists()
    base = Strategy(common_classes=["k0", "k1"])
    out = tune(preds, gold, base=base, target=0.8, n_random=10)
    front = out["front"]
    # the default (union of every list + original + common) is no longer the only answer: the front spans sizes
    assert len(front) >= 4 and front[-1].mean_size > 2 * front[0].mean_size
    shapes = {
        (t.strategy.original_label, tuple(t.strategy.consensus.models or ()), t.strategy.consensus.min_models)
        for t in out["trials"]
    }
    # which models, k of n, with and without the original label were all tried
    assert (True, ("llm1", "llm2", "llm3"), 2) in shapes and (False, ("llm2",), 1) in shapes
    assert any(not t.strategy.common_classes for t in out["trials"])
    # "original + at least 2 lists agree" is far smaller than the union of all lists, at a recall not far below
    union = evaluate(
        apply_strategy(Strategy(common_classes=[], consensus=ConsensusConfig(k=0, global_n=0)), preds), gold
    )
    agree = next(
        t
        for t in out["trials"]
        if t.strategy.original_label
        and t.strategy.consensus.min_models == 2
        and t.strategy.consensus.models == ["llm1", "llm2", "llm3"]
        and not t.strategy.common_classes
        and not t.strategy.label_set_models
    )
    assert agree.mean_size < union["mean_size"] / 2 and agree.recall > union["recall"] - 0.15
    # every strategy on the front is JSON the build form takes, and applying it gives the figures shown
    for t in front:
        again = Strategy.from_json(json.dumps(t.as_dict()["strategy"]))
        rep = evaluate(apply_strategy(again, preds), gold)
        assert rep["recall"] == pytest.approx(t.recall) and rep["mean_size"] == pytest.approx(t.mean_size)


def test_the_printed_front_carries_each_strategy_as_json():
    import json

    from proposals.core.evaluation import format_front

    preds, gold = _label_lists(n=60)
    out = tune(preds, gold, base=Strategy(common_classes=[]), target=0.8, n_random=5)
    text = format_front(out["front"], out["chosen"])
    blobs = [line.strip() for line in text.splitlines() if line.strip().startswith("{")]
    assert len(blobs) == len(out["front"])
    for blob, trial in zip(blobs, out["front"]):
        assert Strategy.from_json(blob).to_dict() == trial.strategy.to_dict() == json.loads(blob)
    assert "consensus lists " in text and "original yes" in text
