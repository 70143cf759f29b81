from django.core.management.base import BaseCommand
from django.db import transaction

from catalog.http import command_errors
from catalog.progress import progress_bar
from catalog.services.clips import dataset_get_or_create
from labels.services.imports import release_import


class Command(BaseCommand):
    help = (
        "Import a VGGSounder-layout label CSV as an immutable release (kept in file order), e.g. the "
        "published vggsounder+background-music.csv, to compare it with merged releases. All or nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--name", required=True, help="release name")
        parser.add_argument("--dataset", required=True, help="dataset (created if absent)")

    def handle(self, *args, **opts):
        with command_errors(), progress_bar(desc="labels", unit="step") as bar:
            with transaction.atomic():
                dataset, _ = dataset_get_or_create(opts["dataset"])
                release = release_import(dataset, opts["name"], opts["file"], bar=bar)
        c = release.source_counts
        self.stdout.write(
            f"imported {c['rows']} labels of {c['clips']} clips as {dataset.name}/{release.name} "
            f"({c['clips_linked_to_dataset']} clips linked to the dataset)"
        )
