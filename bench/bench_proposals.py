"""Benchmark: proposal strategy over 15k clips x 3 models x 3 modalities x 309 classes.

Synthetic predictions whose scores are correlated with synthetic gold labels, so recall and
list sizes behave like real ones. Prints wall times of: rank precomputation, applying the
default (VGGSounder) strategy with provenance, evaluation, building the provenance records,
and a tuner run.

    .venv/bin/python bench/bench_proposals.py [--clips 15446 | --scale 1|10] [--models 3] [--random 150]

``--scale 10`` = 154,460 clips (the tuner is skipped with ``--random 0``); the block-by-block apply that
make_proposals runs (ChunkedStrategy, 4,096 clips per block, with provenance groups) is timed next to the whole-matrix
apply. The whole command, database included: bench_proposal_store.py --scale.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from proposals.core.evaluation import Gold, evaluate, format_front, tune  # noqa: E402
from proposals.core.strategy import (  # noqa: E402
    COMMON_CLASSES,
    ChunkedStrategy,
    PredictionRows,
    Predictions,
    RankCache,
    Strategy,
    apply_strategy,
)


def synthetic(n_clips: int, n_models: int, n_classes: int = 309, seed: int = 0, gold_fraction: float = 0.2):
    rng = np.random.default_rng(seed)
    names = [f"class {i}" for i in range(n_classes - len(COMMON_CLASSES))] + list(COMMON_CLASSES)
    vids = [f"vid{i:06d}" for i in range(n_clips)]
    # true labels: 1 original + ~3 more per clip (popular classes more likely)
    popularity = rng.dirichlet(np.full(n_classes, 0.5))
    truth = np.zeros((n_clips, n_classes), dtype=bool)
    original = np.zeros_like(truth)
    orig_cls = rng.integers(0, n_classes, n_clips)
    original[np.arange(n_clips), orig_cls] = True
    truth |= original
    extra = rng.poisson(3.0, n_clips)
    for i in np.flatnonzero(extra):
        truth[i, rng.choice(n_classes, extra[i], p=popularity)] = True
    scores = {}
    for m in range(n_models):
        quality = 2.0 + m
        scores[f"model{m}"] = {
            mod: (
                rng.standard_normal((n_clips, n_classes), dtype=np.float32)
                + quality * (0.6 if mod != "av" else 1.0) * truth
            ).astype(np.float32)
            for mod in ("a", "v", "av")
        }
    gold_rows = rng.choice(n_clips, int(n_clips * gold_fraction), replace=False)
    preds = Predictions(class_names=names, video_ids=vids, scores=scores, original=original)
    gold = Gold(rows=np.sort(gold_rows), labels=truth[np.sort(gold_rows)])
    return preds, gold


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=15446)
    ap.add_argument("--models", type=int, default=3)
    ap.add_argument("--scale", type=int, choices=[1, 10], help="15,446 x scale clips (overrides --clips)")
    ap.add_argument("--random", type=int, default=150, help="random tuner trials (0: no tuner)")
    args = ap.parse_args()
    if args.scale:
        args.clips = 15446 * args.scale

    t0 = time.perf_counter()
    preds, gold = synthetic(args.clips, args.models)
    print(
        f"synthetic data: {args.clips} clips x {args.models} models x 3 modalities x 309 "
        f"classes ({time.perf_counter() - t0:.2f} s to generate)"
    )

    strategy = Strategy()
    t0, c0 = time.perf_counter(), time.process_time()
    plan = ChunkedStrategy(strategy, PredictionRows.from_predictions(preds))
    t_cut = time.perf_counter() - t0
    texts: dict = {}
    n_blocks = sum(part.provenance_groups(texts)[0].size for _, part in plan.chunks())
    t_blocks, c_blocks = time.perf_counter() - t0, time.process_time() - c0
    print(
        f"apply by blocks (cut {t_cut:.2f} s + blocks with provenance groups): {t_blocks:7.2f} s wall, "
        f"{c_blocks:.2f} s CPU, {n_blocks} proposals"
    )
    t0 = time.perf_counter()
    cache = RankCache(preds, strategy.consensus.global_n)
    for m in preds.scores:
        for mod in preds.scores[m]:
            cache.within(m, mod)
            cache.global_(m, mod, strategy.consensus.global_n)
    t_rank = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = apply_strategy(strategy, preds, cache=cache)
    t_apply = time.perf_counter() - t0
    t0 = time.perf_counter()
    res_cold = apply_strategy(strategy, preds)
    t_cold = time.perf_counter() - t0
    assert (res_cold.proposed == res.proposed).all()
    t0 = time.perf_counter()
    report = evaluate(res, gold)
    t_eval = time.perf_counter() - t0
    t0 = time.perf_counter()
    n_rec = sum(1 for _ in res.records())
    t_rec = time.perf_counter() - t0
    print(f"rank precomputation:              {t_rank:7.2f} s")
    print(f"apply default strategy (warm):    {t_apply:7.2f} s")
    print(f"apply default strategy (cold):    {t_cold:7.2f} s  (ranks + apply + provenance masks)")
    print(f"evaluate:                         {t_eval:7.2f} s")
    print(f"provenance records:               {t_rec:7.2f} s  ({n_rec} proposals)")
    print(
        f"default strategy: recall {report['recall']:.4f}, mean size {report['mean_size']:.2f}, "
        f"median {report['median_size']:.0f}"
    )
    print("recall per rule:", {k: round(v, 4) for k, v in report["recall_per_rule"].items()})

    if args.random <= 0:
        return
    t0 = time.perf_counter()
    out = tune(preds, gold, n_random=args.random)
    t_tune = time.perf_counter() - t0
    print(f"tune: {out['n_trials']} trials in {t_tune:.1f} s ({1000 * t_tune / out['n_trials']:.0f} ms/trial)")
    print(format_front(out["front"], out["chosen"]))
    ch = out["chosen"]
    print(f"chosen (target 0.90 met: {out['target_met']}): recall {ch.recall:.4f}, mean size {ch.mean_size:.2f}")


if __name__ == "__main__":
    main()
