from django.core.management.base import BaseCommand

from catalog.http import command_dataset
from crowd.services.rescore import catch_trials_rescore


class Command(BaseCommand):
    help = (
        "Mark batch items of gold clips as catch trials and re-score the submitted assignments of those batches "
        "(after gold labels were added or changed). Scores only: --decide also approves/rejects the verified "
        "assignments still waiting and blocks workers below the floor. --dry-run lists the changes, writes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True)
        parser.add_argument("--dry-run", action="store_true", help="list what would change; write nothing")
        parser.add_argument("--decide", action="store_true", help="apply the dataset policy to waiting assignments")

    def handle(self, *args, **opts):
        dataset = command_dataset(opts["dataset"])
        report = catch_trials_rescore(dataset, dry_run=opts["dry_run"], decide=opts["decide"])
        for line in report.lines():
            self.stdout.write(line)
