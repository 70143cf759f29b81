from django.core.management.base import BaseCommand, CommandError

from catalog.http import command_dataset
from crowd.marketplace import MarketplaceError
from crowd.services.sync import marketplace_sync


class Command(BaseCommand):
    help = (
        "Sync open HITs / studies now: store submissions, score, approve/reject with feedback, re-post, expire "
        "finished HITs, pay bonuses, block workers (Celery beat runs the same every few minutes)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dataset", default=None)

    def handle(self, *args, **o):
        dataset = None
        if o["dataset"]:
            dataset = command_dataset(o["dataset"])
        try:
            summary = marketplace_sync(dataset=dataset, echo=self.stdout.write)
        except MarketplaceError as exc:
            raise CommandError(exc.message) from exc
        counts = {k: v for k, v in summary.items() if k not in ("errors",)}
        self.stdout.write("summary: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        if summary["errors"]:
            raise CommandError("some HITs could not be synced:\n" + "\n".join(summary["errors"]))
