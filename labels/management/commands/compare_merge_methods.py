from django.core.management.base import BaseCommand, CommandError

from catalog.http import command_dataset
from labels.core.card import WORKER_QUALITY_DEFINITION, compare_methods
from labels.core.merge import METHODS
from labels.services.load import votes_load
from labels.services.quality import expert_annotations, gold_meta


class Command(BaseCommand):
    help = (
        "Compare merge methods on the gold clips with leave-out evaluation (a gold clip's own gold answer "
        "never informs the annotator weights used to merge it, nor is it clamped); prints micro- and macro-F1 against "
        "gold per method with bootstrap 95%% intervals, measured exactly as release quality cards are."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True)
        parser.add_argument("--methods", default=",".join(METHODS))
        parser.add_argument("--k", type=int, default=None)
        parser.add_argument(
            "--folds", type=int, default=0, help="folds for majority/weighted (0 = leave-one-out, the default)"
        )
        parser.add_argument(
            "--ds-folds", type=int, default=10, help="folds for Dawid-Skene, refitted once per fold (0 = leave-one-out)"
        )
        parser.add_argument(
            "--ds-sample",
            type=int,
            default=3000,
            help="Dawid-Skene is fitted on the gold clips plus this many other clips (0 = all)",
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap draws for the 95%% intervals")

    def handle(self, *args, **opts):
        dataset = command_dataset(opts["dataset"])
        methods = [m.strip() for m in opts["methods"].split(",") if m.strip()]
        bad = [m for m in methods if m not in METHODS]
        if bad:
            raise CommandError(f"unknown method(s) {', '.join(bad)}; allowed: {', '.join(METHODS)}")
        loaded = votes_load(dataset)
        if not loaded.gold:
            raise CommandError(f"dataset {dataset.name} has no gold labels; nothing to compare against")
        k = opts["k"] or dataset.annotations_per_clip
        out = compare_methods(
            loaded.votes,
            loaded.gold,
            methods=methods,
            k=k,
            folds=opts["folds"] or None,
            ds_folds=opts["ds_folds"] or None,
            seed=opts["seed"],
            ds_sample=opts["ds_sample"] or None,
            catch_clips=loaded.catch_clips,
            exclude_ann=expert_annotations(loaded),
            gold_meta=gold_meta(loaded),
            n_boot=opts["bootstrap"],
        )
        n = next(iter(out.values()))["n_clips"] if out else 0
        self.stdout.write(f"{dataset.name}: {n} gold clips with >= {k} approved crowd annotations")
        self.stdout.write(
            f"{'method':<13}{'micro-F1':>9} {'95% interval':<15}{'macro-F1':>9} {'95% interval':<15}"
            f"{'audible':>8}{'visible':>8}{'folds':>7}"
        )

        def ci(r, key):
            lo, hi = r.get(f"{key}_ci95") or (float("nan"), float("nan"))
            return f"{lo:.3f}-{hi:.3f}"

        for m in methods:
            r = out[m]
            mod = r.get("modality") or {}
            self.stdout.write(
                f"{m:<13}{r['micro_f1']:>9.4f} {ci(r, 'micro_f1'):<15}{r['macro_f1']:>9.4f} {ci(r, 'macro_f1'):<15}"
                f"{mod.get('audible', {}).get('micro_f1', float('nan')):>8.3f}"
                f"{mod.get('visible', {}).get('micro_f1', float('nan')):>8.3f}{r['folds']:>7}"
            )
        self.stdout.write("annotator quality: " + WORKER_QUALITY_DEFINITION)
