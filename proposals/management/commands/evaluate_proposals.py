import json

from django.core.management.base import BaseCommand

from catalog.http import command_errors
from proposals.services import proposals_evaluate

from ._common import get_dataset


class Command(BaseCommand):
    help = (
        "Evaluate a proposal strategy against the gold standard: recall, mean/median proposals per clip, "
        "recall per rule. With --tune, search per-model k, pool size and agreement, print the Pareto "
        "front of recall vs mean size and the smallest lists with recall >= --target."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True)
        parser.add_argument("--strategy", help="strategy JSON (default: the active set's, else the VGGSounder recipe)")
        parser.add_argument("--models", help="comma-separated model run names (default: all finished runs)")
        parser.add_argument("--tune", action="store_true")
        parser.add_argument("--target", type=float, default=0.90)
        parser.add_argument("--trials", type=int, default=150, help="random trials of the tuner (plus a greedy path)")
        parser.add_argument("--json", action="store_true", help="print the full report as JSON")

    def handle(self, *args, **opts):
        dataset = get_dataset(opts["dataset"])
        models = [m.strip() for m in opts["models"].split(",")] if opts["models"] else None
        with command_errors():
            rep = proposals_evaluate(
                dataset,
                opts["strategy"],
                models=models,
                do_tune=opts["tune"],
                target=opts["target"],
                n_random=opts["trials"],
            )
        if opts["json"]:
            self.stdout.write(json.dumps(rep, indent=2, default=str))
            return
        w = self.stdout.write
        w(f"dataset {dataset.name}: {rep['n_clips']} clips, models {', '.join(rep['models'])}")
        w(f"gold: {rep['n_gold_labels']} labels on {rep['n_gold_clips']} clips")
        w(f"recall {rep['recall']:.4f} (mean per clip {rep['clip_recall_mean']:.4f})")
        w(f"proposals per clip: mean {rep['mean_size']:.2f}, median {rep['median_size']:.0f}, max {rep['max_size']}")
        w("recall per rule (alone / only this rule):")
        for rule, r in rep["recall_per_rule"].items():
            w(f"  {rule:<10} {r:.4f} / {rep['only_rule'].get(rule, 0):.4f}")
        t = rep.get("tune")
        if t:
            w(f"\nPareto front ({t['n_trials']} strategies tried), recall vs mean size:")
            w(t["front_text"])
            ch = t["chosen"]
            if ch:
                status = "meets" if t["target_met"] else "does NOT reach"
                w(
                    f"\nsmallest lists that {status} recall {t['target']:.2f}: recall {ch['recall']:.4f}, "
                    f"mean size {ch['mean_size']:.2f}"
                )
                w("strategy: " + json.dumps(ch["strategy"], sort_keys=True))
