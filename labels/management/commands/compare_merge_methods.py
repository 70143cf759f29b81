from django.core.management.base import BaseCommand, CommandError

from catalog.models import Dataset
from labels.core.merge import METHODS
from labels.core.quality import compare_methods
from labels.services.load import votes_load


class Command(BaseCommand):
    help = (
        "Compare merge methods on the gold clips with leave-out evaluation (a gold clip's own gold answer "
        "never informs the annotator weights used to merge it); prints macro-F1 against gold per method."
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

    def handle(self, *args, **opts):
        try:
            dataset = Dataset.objects.get(name=opts["dataset"])
        except Dataset.DoesNotExist:
            raise CommandError(f"no dataset {opts['dataset']!r}") from None
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
        )
        n = next(iter(out.values()))["n_clips"] if out else 0
        self.stdout.write(f"{dataset.name}: {n} gold clips with >= {k} approved annotations")
        self.stdout.write(f"{'method':<14}{'macro-F1':>10}{'folds':>8}{'classes':>9}")
        for m in methods:
            r = out[m]
            self.stdout.write(f"{m:<14}{r['macro_f1']:>10.4f}{r['folds']:>8}{len(r['per_class']):>9}")
