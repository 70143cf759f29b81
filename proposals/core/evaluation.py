"""Evaluate proposal strategies against the gold standard and tune their parameters.

Pure numpy. Gold is a bool matrix over the gold clips (labels with modality != "-").
Recall is micro-averaged: proposed gold labels / all gold labels, pooled over gold clips.
Proposal-list sizes are measured over all clips of the dataset.
"""

from __future__ import annotations

import copy
import itertools
import random
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .strategy import (
    MODALITIES,
    Predictions,
    ProposalResult,
    RankCache,
    Strategy,
    StrategyError,
    apply_strategy,
    labels_to_matrix,
)


@dataclass
class Gold:
    """Gold labels aligned to a Predictions object: ``rows`` index its clips, ``labels`` is
    bool [len(rows), C]."""

    rows: np.ndarray
    labels: np.ndarray

    @classmethod
    def from_labels(cls, preds: Predictions, gold: Mapping[str, Iterable[str]]) -> "Gold":
        """gold: video_id -> class names present (modality != "-"). Gold clips without
        predictions are ignored; unknown class names raise StrategyError."""
        row = {v: i for i, v in enumerate(preds.video_ids)}
        vids = [v for v in gold if v in row]
        labels = labels_to_matrix(vids, preds.class_names, gold, what="gold")
        return cls(rows=np.array([row[v] for v in vids], dtype=np.int64), labels=labels)

    @property
    def n_labels(self) -> int:
        return int(self.labels.sum())


def evaluate(result: ProposalResult, gold: Gold, *, sizes: np.ndarray | None = None) -> dict[str, Any]:
    """Recall against gold, proposal-list sizes and recall per rule. ``sizes``: the list size of every clip of
    the dataset when ``result`` holds only some of them (the gold clips, ``gold.rows`` indexing ``result``)."""
    sizes = result.sizes() if sizes is None else sizes
    n_gold = gold.n_labels
    out: dict[str, Any] = {
        "n_clips": int(sizes.size),
        "n_gold_clips": int(gold.rows.size),
        "n_gold_labels": n_gold,
        "mean_size": float(sizes.mean()) if sizes.size else 0.0,
        "median_size": float(np.median(sizes)) if sizes.size else 0.0,
        "max_size": int(sizes.max()) if sizes.size else 0,
    }
    if n_gold == 0:
        out.update(recall=None, clip_recall_mean=None, recall_per_rule={}, only_rule={}, gold_mean_size=None)
        return out
    prop = result.proposed[gold.rows]
    hit = prop & gold.labels
    out["recall"] = float(hit.sum() / n_gold)
    per_clip_gold = gold.labels.sum(axis=1)
    with_gold = per_clip_gold > 0
    out["clip_recall_mean"] = (
        float((hit.sum(axis=1)[with_gold] / per_clip_gold[with_gold]).mean()) if with_gold.any() else None
    )
    out["gold_mean_size"] = float(prop.sum(axis=1).mean())
    per_rule: dict[str, float] = {}
    covered_by = {}
    for rule, mask in result.rule_masks.items():
        m = mask[gold.rows] & gold.labels
        covered_by[rule] = m
        per_rule[rule] = float(m.sum() / n_gold)
    out["recall_per_rule"] = per_rule
    # gold labels found by exactly this rule and no other
    only: dict[str, float] = {}
    if covered_by:
        stack = np.stack(list(covered_by.values()))
        n_rules = stack.sum(axis=0)
        for rule, m in covered_by.items():
            only[rule] = float((m & (n_rules == 1)).sum() / n_gold)
    out["only_rule"] = only
    return out


# --------------------------------------------------------------------------------------------
# Tuner
# --------------------------------------------------------------------------------------------


@dataclass
class SearchSpace:
    """Values tried by the tuner. topk values are tried per model and modality."""

    topk: dict[str, list[int]] = field(
        default_factory=lambda: {"a": [0, 1, 2, 3, 5, 8, 10], "v": [0, 1, 2, 3, 5], "av": [0, 1, 2, 3, 5]}
    )
    consensus_k: list[int] = field(default_factory=lambda: [0, 3, 5, 10, 15, 20])
    global_n: list[int] = field(default_factory=lambda: [0, 15_000, 30_000, 60_000, 120_000])
    min_models: list[int] = field(default_factory=lambda: [2, 3])

    def validate(self) -> None:
        for name, vals in [
            ("consensus_k", self.consensus_k),
            ("global_n", self.global_n),
            ("min_models", self.min_models),
        ] + [(f"topk.{m}", v) for m, v in self.topk.items()]:
            if not vals or any((not isinstance(x, int)) or x < 0 for x in vals):
                raise StrategyError(f"search space {name} must be a non-empty list of ints >= 0")
        for m in self.topk:
            if m not in MODALITIES:
                raise StrategyError(f"search space topk: unknown modality {m!r}")


@dataclass
class Trial:
    strategy: Strategy
    recall: float
    mean_size: float

    def as_dict(self) -> dict[str, Any]:
        return {"recall": self.recall, "mean_size": self.mean_size, "strategy": self.strategy.to_dict()}


class _FastEvaluator:
    """Evaluates many strategies on the same predictions, reusing ranks."""

    def __init__(self, base: Strategy, preds: Predictions, gold: Gold, max_global_n: int):
        self.base = base
        self.preds = preds
        self.gold = gold
        self.cache = RankCache(preds, max_global_n)
        self.n_gold = gold.n_labels
        self.seen: dict[str, Trial] = {}

    def __call__(self, strategy: Strategy) -> Trial:
        key = strategy.to_json()
        trial = self.seen.get(key)
        if trial is None:
            res = apply_strategy(strategy, self.preds, cache=self.cache, keep_sources=False)
            hit = res.proposed[self.gold.rows] & self.gold.labels
            recall = float(hit.sum() / self.n_gold) if self.n_gold else 0.0
            trial = Trial(strategy, recall, float(res.proposed.sum() / max(res.proposed.shape[0], 1)))
            self.seen[key] = trial
        return trial


def pareto_front(trials: Sequence[Trial]) -> list[Trial]:
    """Trials not dominated in (higher recall, smaller mean size), sorted by mean size."""
    ordered = sorted(trials, key=lambda t: (t.mean_size, -t.recall))
    front: list[Trial] = []
    best = -1.0
    for t in ordered:
        if t.recall > best:
            front.append(t)
            best = t.recall
    return front


def pick(front: Sequence[Trial], target: float) -> tuple[Trial | None, bool]:
    """Smallest mean size with recall >= target; else the highest-recall trial (met=False)."""
    ok = [t for t in front if t.recall >= target]
    if ok:
        return min(ok, key=lambda t: (t.mean_size, -t.recall)), True
    if not front:
        return None, False
    return max(front, key=lambda t: (t.recall, -t.mean_size)), False


def _with(strategy: Strategy, **changes: Any) -> Strategy:
    s = copy.deepcopy(strategy)
    for key, value in changes.items():
        if key.startswith("consensus."):
            setattr(s.consensus, key.split(".", 1)[1], value)
        else:
            setattr(s, key, value)
    return s


def tune(
    preds: Predictions,
    gold: Gold,
    *,
    base: Strategy | None = None,
    space: SearchSpace | None = None,
    target: float = 0.90,
    n_random: int = 150,
    seed: int = 0,
    greedy: bool = True,
) -> dict[str, Any]:
    """Search per-model top-k, consensus k, pool size (global_n) and agreement (min_models).

    Random search over the space (per-model k sampled independently) plus a greedy descent
    from the largest configuration that, at each step, shrinks the one parameter costing the
    least recall per proposal saved. Returns all trials, the Pareto front and the pick.
    """
    base = base or Strategy()
    space = space or SearchSpace()
    space.validate()
    if gold.n_labels == 0:
        raise StrategyError("cannot tune: the gold standard has no labels for these clips")
    ev = _FastEvaluator(base, preds, gold, max(space.global_n + [base.consensus.global_n]))
    models = list(preds.scores)
    mods_of = {m: [mod for mod in MODALITIES if mod in preds.scores[m]] for m in models}
    rng = random.Random(seed)

    def make(per_model: dict[str, dict[str, int]], ck: int, gn: int, mm: int) -> Strategy:
        return _with(
            base, topk_per_model=per_model, **{"consensus.k": ck, "consensus.global_n": gn, "consensus.min_models": mm}
        )

    ev(base)
    for _ in range(max(0, n_random)):
        per_model = {m: {mod: rng.choice(space.topk.get(mod, [0])) for mod in mods_of[m]} for m in models}
        ev(make(per_model, rng.choice(space.consensus_k), rng.choice(space.global_n), rng.choice(space.min_models)))

    if greedy:
        # state: indices into the value lists
        params: list[tuple[str, list[int]]] = []
        for m in models:
            for mod in mods_of[m]:
                params.append((f"k:{m}:{mod}", sorted(space.topk.get(mod, [0]))))
        params.append(("consensus.k", sorted(space.consensus_k)))
        params.append(("consensus.global_n", sorted(space.global_n)))
        # agreement: larger min_models = fewer proposals, so order descending in "size"
        params.append(("consensus.min_models", sorted(space.min_models, reverse=True)))
        state = {name: len(vals) - 1 for name, vals in params}
        values = dict(params)

        def build(st: dict[str, int]) -> Strategy:
            per_model: dict[str, dict[str, int]] = {m: {} for m in models}
            for name, idx in st.items():
                if name.startswith("k:"):
                    _, m, mod = name.split(":")
                    per_model[m][mod] = values[name][idx]
            return make(
                per_model,
                values["consensus.k"][st["consensus.k"]],
                values["consensus.global_n"][st["consensus.global_n"]],
                values["consensus.min_models"][st["consensus.min_models"]],
            )

        current = ev(build(state))
        while True:
            best_move, best_score, best_trial = None, None, None
            for name, _ in params:
                if state[name] == 0:
                    continue
                st = dict(state)
                st[name] -= 1
                trial = ev(build(st))
                saved = current.mean_size - trial.mean_size
                lost = current.recall - trial.recall
                if lost <= 0 and saved >= 0:
                    score = -1.0 - saved  # free move: nothing lost, prefer the largest saving
                elif saved <= 0:
                    continue  # loses recall without making lists smaller
                else:
                    score = lost / saved
                if best_score is None or score < best_score:
                    best_move, best_score, best_trial = name, score, trial
            if best_move is None:
                break
            state[best_move] -= 1
            current = best_trial

    if preds.label_sets:
        for strategy in label_list_strategies(base, preds):
            ev(strategy)

    trials = list(ev.seen.values())
    front = pareto_front(trials)
    chosen, met = pick(front, target)
    return {
        "trials": trials,
        "front": front,
        "chosen": chosen,
        "target_met": met,
        "target": target,
        "n_trials": len(trials),
    }


def label_list_strategies(base: Strategy, preds: Predictions, max_subsets: int = 64) -> list[Strategy]:
    """Strategies for label-list models (LLM outputs imported as class sets), which have no scores to rank: which
    lists to use (every subset of the models, or for many models: each alone, all, all but one), how many of them must
    agree (k of n, through the consensus pool, where a label-list model's pool is its list), with or without the
    clip's original label and the common classes. Score models keep the base strategy's top-k or are switched off;
    the score-model consensus is replaced by the list agreement."""
    lists = list(preds.label_sets)
    n = len(lists)
    if n <= 6:
        subsets = [list(c) for r in range(1, n + 1) for c in itertools.combinations(lists, r)]
    else:
        subsets = [[m] for m in lists] + [lists] + [[m for m in lists if m != x] for x in lists]
    subsets = subsets[:max_subsets]
    topk_options = [({}, {mod: 0 for mod in MODALITIES})]
    if preds.scores:
        topk_options.append((copy.deepcopy(base.topk_per_model), dict(base.topk)))
    out = []
    for subset in subsets:
        for k in range(1, len(subset) + 1):
            for original in (True, False):
                for common in (list(base.common_classes), []):
                    for per_model, topk in topk_options:
                        s = copy.deepcopy(base)
                        s.original_label = original
                        s.common_classes = list(common)
                        s.label_set_models = False
                        s.topk = dict(topk)
                        s.topk_per_model = copy.deepcopy(per_model)
                        s.consensus.models = list(subset)
                        s.consensus.min_models = k
                        s.consensus.k = 0
                        s.consensus.global_n = 0
                        out.append(s)
    return out


def format_front(front: Sequence[Trial], chosen: Trial | None = None) -> str:
    """Human-readable Pareto front table; under each row the strategy as the JSON that make_proposals --strategy and
    the build form take."""
    lines = [f"{'mean size':>10}  {'recall':>7}  strategy"]
    for t in front:
        s = t.strategy
        mark = " <= chosen" if chosen is not None and t is chosen else ""
        per = ";".join(
            f"{m}:" + ",".join(f"{mod}={k}" for mod, k in sorted(d.items()))
            for m, d in sorted(s.topk_per_model.items())
        ) or "topk=" + json_compact(s.topk)
        pool = f"lists {','.join(s.consensus.models)}" if s.consensus.models is not None else "all models"
        lines.append(
            f"{t.mean_size:10.2f}  {t.recall:7.4f}  {per} | consensus {pool} k={s.consensus.k} "
            f"N={s.consensus.global_n} agree>={s.consensus.min_models} | original {'yes' if s.original_label else 'no'}"
            f", common {len(s.common_classes)}, all label lists {'yes' if s.label_set_models else 'no'}{mark}"
        )
        lines.append(f"{'':>21}{s.to_json()}")
    return "\n".join(lines)


def json_compact(d: Mapping[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(d.items()))
