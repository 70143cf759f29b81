#!/usr/bin/env python
"""Merge methods on a simulated crowd with known truth (not a test): every method's quality card (leave-one-out on
the gold clips, as releases compute it) and its F1 against the full truth of the non-gold clips.

The crowd: labels.core.simcrowd (VGGSounder's published label sets, 417 gold clips, batches of 18 + 2 catch trials,
3-5 annotators per batch, ~6 % of assignments below 0.25 catch F1, audible harder than visible).

  python bench/bench_quality.py                    # 417 gold + 3753 other clips, seeds 0 1 2
  python bench/bench_quality.py --others 900 --seeds 0
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import numpy as np  # noqa: E402

from labels.core.card import quality_card, score_predictions, worker_quality  # noqa: E402
from labels.core.merge import EM_METHODS, METHODS, merge  # noqa: E402
from labels.core.simcrowd import fixed_overlap, make_crowd, vggsounder_truth  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gold", type=int, default=417)
    ap.add_argument("--others", type=int, default=3753)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--k", type=int, default=3)
    args = ap.parse_args()
    methods = args.methods.split(",")
    rows = {m: [] for m in methods}
    for seed in args.seeds:
        names, truth = vggsounder_truth(limit=args.gold + args.others, seed=seed)
        crowd = make_crowd(names, truth, n_gold=args.gold, seed=seed)
        votes, catch, log = fixed_overlap(crowd)
        f1s = np.array(log["catch_f1"])
        print(
            f"seed {seed}: {len(truth)} clips ({args.gold} gold), {log['assignments']} assignments, "
            f"{(f1s < 0.25).mean():.1%} below 0.25 catch F1, median catch F1 {np.median(f1s):.3f}, "
            f"{len(votes.ann_clip)} annotations"
        )
        gold = crowd.gold
        q = worker_quality(votes, gold, catch)
        others = [c for c in range(args.gold, len(truth))]
        truth_others = {c: crowd.truth[c] for c in others}
        for m in methods:
            t0 = time.perf_counter()
            card = quality_card(
                votes, gold, m, k=args.k, catch_clips=catch, gold_meta=crowd.gold_meta(), n_boot=200, seed=seed
            )
            res = merge(votes, m, gold=gold, k=args.k, **({} if m in EM_METHODS else {"worker_quality": q}))
            sets = res.label_sets()
            full = score_predictions(sets, truth_others, [c for c in others if c in sets], n_boot=0)
            rows[m].append(
                (
                    card["micro_f1"],
                    card["macro_f1"],
                    card["modality"]["audible"]["micro_f1"],
                    card["modality"]["visible"]["micro_f1"],
                    full["micro_f1"],
                    full["macro_f1"],
                    time.perf_counter() - t0,
                )
            )
            print(
                f"  {m:<12} LOO micro {card['micro_f1']:.3f} {card['micro_f1_ci95']} macro {card['macro_f1']:.3f} "
                f"{card['macro_f1_ci95']} | A {card['modality']['audible']['micro_f1']:.3f} "
                f"V {card['modality']['visible']['micro_f1']:.3f} | truth micro {full['micro_f1']:.3f} "
                f"macro {full['macro_f1']:.3f} ({time.perf_counter() - t0:.1f} s)"
            )
    print("\nmean over seeds", args.seeds)
    print("| method | LOO micro-F1 | LOO macro-F1 | audible micro | visible micro | truth micro | truth macro |")
    print("|---|---|---|---|---|---|---|")
    for m in methods:
        a = np.array(rows[m])[:, :6].mean(axis=0)
        print(f"| {m} | " + " | ".join(f"{x:.3f}" for x in a) + " |")


if __name__ == "__main__":
    main()
