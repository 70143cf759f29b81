from django.core.management.base import BaseCommand, CommandError

from catalog.errors import AvcrowdError
from crowd.services.gold import gold_import_csv

from .create_batches import _dataset


class Command(BaseCommand):
    help = (
        "Import gold labels from a CSV with header id,label,original,modality (modality A, V, AV or '-' for "
        "absent; original True/False). The clips must exist. All or nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("csv")
        parser.add_argument("--dataset", required=True)

    def handle(self, *args, **opts):
        dataset = _dataset(opts["dataset"])
        try:
            n = gold_import_csv(dataset, opts["csv"])
        except AvcrowdError as exc:
            raise CommandError(exc.as_text()) from exc
        self.stdout.write(f"imported {n} gold label rows into dataset {dataset.name}")
