from django.core.management.base import BaseCommand

from catalog.http import command_dataset, command_errors
from labels.services.workers import workers_qualify


class Command(BaseCommand):
    help = (
        "Qualify the dataset's good workers on their marketplace so later batches can be restricted to them: MTurk "
        "workers get the 'avcrowd: qualified annotator' qualification (value = catch F1 x 100), Prolific participants "
        "join the allow-list participant group. Quality: mean catch F1 of the worker's approved assignments in this "
        "dataset (the definition releases use)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True)
        parser.add_argument("--min-f1", type=float, required=True, help="e.g. 0.6")
        parser.add_argument("--min-assignments", type=int, default=2, help="scored assignments a worker needs")
        parser.add_argument("--backend", default="mturk", choices=("mturk", "prolific"))
        parser.add_argument("--live", action="store_true", help="MTurk production (default: the sandbox)")
        parser.add_argument("--dry-run", action="store_true", help="list the workers, send nothing")

    def handle(self, *args, **opts):
        dataset = command_dataset(opts["dataset"])
        with command_errors():
            out = workers_qualify(
                dataset,
                min_f1=opts["min_f1"],
                min_assignments=opts["min_assignments"],
                backend=opts["backend"],
                sandbox=not opts["live"],
                dry_run=opts["dry_run"],
            )
        verb = "would qualify" if opts["dry_run"] else "qualified"
        where = f" ({out['target']})" if out["target"] else ""
        self.stdout.write(
            f"{dataset.name}: {verb} {len(out['workers'])} of {out['considered']} workers on {out['backend']}{where}"
        )
        for w in out["workers"]:
            self.stdout.write(f"  {w}")
