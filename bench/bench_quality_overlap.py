#!/usr/bin/env python
"""Adaptive overlap against a fixed number of annotators per clip, on the simulated crowd (not a test): assignments
bought (rejected ones included: they are paid for in time and re-posted) against F1 of the merged labels against the
simulated truth of the non-gold clips, and the leave-one-out quality card on gold.

  python bench/bench_quality_overlap.py                          # 417 gold + 3753 clips, seeds 0 1
  python bench/bench_quality_overlap.py --others 1800 --seeds 0  # quicker
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from labels.core.card import score_predictions  # noqa: E402
from labels.core.merge import merge  # noqa: E402
from labels.core.simcrowd import adaptive_overlap, fixed_overlap, make_crowd, vggsounder_truth  # noqa: E402


def evaluate(crowd, votes, method):
    res = merge(votes, method, gold=crowd.gold, k=1)
    sets = res.label_sets()
    others = [c for c in range(len(crowd.gold_clips), len(crowd.truth))]
    card = score_predictions(sets, {c: crowd.truth[c] for c in others}, others, n_boot=0)
    return card["micro_f1"], card["macro_f1"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gold", type=int, default=417)
    ap.add_argument("--others", type=int, default=3753)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--method", default="modality_ds")
    ap.add_argument("--max-errors", type=float, nargs="+", default=[1.0, 1.5, 1.75, 2.0])
    ap.add_argument("--max-votes", type=int, nargs="+", default=[5])
    args = ap.parse_args()
    table: dict = {}
    for seed in args.seeds:
        names, truth = vggsounder_truth(limit=args.gold + args.others, seed=seed)
        runs = [(f"fixed-{r}", {"fixed": r}) for r in (2, 3, 4)]
        runs += [
            (f"adaptive 2-{mv} e<={e}", {"e": e, "u": True, "max": mv})
            for mv in args.max_votes
            for e in args.max_errors
        ]
        for name, spec in runs:
            crowd = make_crowd(names, truth, n_gold=args.gold, seed=seed)
            t0 = time.perf_counter()
            if "fixed" in spec:
                votes, _catch, log = fixed_overlap(crowd, per_clip=(spec["fixed"], spec["fixed"]))
            else:
                votes, _catch, log = adaptive_overlap(
                    crowd,
                    max_expected_errors=spec["e"],
                    stop_when_unanimous=spec["u"],
                    method=args.method,
                    max_votes=spec["max"],
                )
            micro, macro = evaluate(crowd, votes, args.method)
            per_clip = np.bincount(votes.ann_clip, minlength=votes.n_clips)[args.gold :].mean()
            table.setdefault(name, []).append((log["assignments"], per_clip, micro, macro))
            print(
                f"seed {seed} {name:<20} assignments {log['assignments']:>5}  votes/clip {per_clip:.2f}  "
                f"micro {micro:.4f}  macro {macro:.4f}  rounds {log.get('rounds', '-')}  "
                f"({time.perf_counter() - t0:.1f} s)"
            )
    print(f"\nmean over seeds {args.seeds}, merged with {args.method}")
    print("| policy | assignments | votes per clip | micro-F1 | macro-F1 |")
    print("|---|---|---|---|---|")
    for name, rows in table.items():
        a = np.array(rows).mean(axis=0)
        print(f"| {name} | {a[0]:.0f} | {a[1]:.2f} | {a[2]:.3f} | {a[3]:.3f} |")


if __name__ == "__main__":
    main()
