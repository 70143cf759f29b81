from django.core.management.base import BaseCommand

from catalog.http import command_dataset, command_errors
from crowd.services.batches import batches_rebuild_without_catch_trials


class Command(BaseCommand):
    help = (
        "Rebuild the dataset's batches that have no catch trial (built before gold was imported): each one nobody "
        "worked on and that was never published is replaced by batches with catch trials from today's gold clips. "
        "Batches with work or HITs are kept and listed. Refused while the dataset has no gold clip."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True)

    def handle(self, *args, **opts):
        dataset = command_dataset(opts["dataset"])
        with command_errors():
            result = batches_rebuild_without_catch_trials(dataset)
        self.stdout.write(
            f"rebuilt {result['deleted']} batch(es) without catch trials as {len(result['created'])} batch(es) with "
            f"catch trials in dataset {dataset.name}"
        )
        for uuid in result["kept"]:
            self.stdout.write(f"  kept (has work or HITs): batch {uuid}")
        if result["warning"]:
            self.stderr.write(f"warning: {result['warning']}")
