from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from catalog.http import command_errors
from catalog.services.clips import dataset_get_or_create
from crowd.services.mturk_import import mturk_results_import


class Command(BaseCommand):
    help = (
        "Import MTurk batch results CSVs (requester download, VGGSounder layout: Input.video_urls, "
        "Input.proposal_lists, Answer.taskAnswers). Re-importing a file changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+")
        parser.add_argument("--dataset", required=True, help="dataset name (created if absent)")

    def handle(self, *args, **o):
        paths = [Path(f) for f in o["files"]]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise CommandError(f"no such file: {', '.join(missing)}")
        with command_errors():
            dataset, _ = dataset_get_or_create(o["dataset"])
            mturk_results_import(dataset, paths, echo=self.stdout.write)
