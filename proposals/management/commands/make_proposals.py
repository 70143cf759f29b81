from django.core.management.base import BaseCommand, CommandError

from catalog.http import command_errors
from proposals.services import proposal_set_create

from ._common import get_dataset


class Command(BaseCommand):
    help = (
        "Apply a proposal strategy (default: the VGGSounder recipe) to all finished model runs of a dataset "
        "and store the proposals, with provenance, as the dataset's active proposal set."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True)
        parser.add_argument(
            "--strategy", help="strategy JSON (partial; missing keys take default values) or @file.json"
        )
        parser.add_argument("--models", help="comma-separated model run names (default: all finished runs)")
        parser.add_argument("--inactive", action="store_true", help="store without making it the active set")

    def handle(self, *args, **opts):
        dataset = get_dataset(opts["dataset"])
        strategy = opts["strategy"]
        if strategy and strategy.startswith("@"):
            try:
                with open(strategy[1:]) as fh:
                    strategy = fh.read()
            except OSError as exc:
                raise CommandError(f"cannot read strategy file {strategy[1:]}: {exc}") from None
        models = [m.strip() for m in opts["models"].split(",")] if opts["models"] else None
        with command_errors():
            pset = proposal_set_create(dataset, strategy, models=models, activate=not opts["inactive"])
        ev = pset.evaluation
        line = (
            f"proposal set {pset.pk} for {dataset.name}: {pset.n_proposals} proposals, "
            f"mean {ev['mean_size']:.1f} / median {ev['median_size']:.0f} per clip"
        )
        if ev.get("recall") is not None:
            line += f", recall {ev['recall']:.4f} on {ev['n_gold_labels']} gold labels"
        self.stdout.write(line + (" (active)" if pset.active else ""))
