from django.core.management.base import BaseCommand
from django.db import transaction

from catalog.http import command_dataset, command_errors
from crowd.services.gold import gold_import_csv
from crowd.services.rescore import catch_trials_rescore


class Command(BaseCommand):
    help = (
        "Import gold labels from a CSV with header id,label,original,modality (modality A, V, AV or '-' for "
        "absent; original True/False). The clips must exist. All or nothing. Then the batch items of the gold "
        "clips become catch trials and the assignments of those batches are re-scored (results imported before "
        "the gold included); --dry-run lists every change and writes nothing; --decide also applies the "
        "dataset policy to the assignments still waiting (no approve/reject without it)."
    )

    def add_arguments(self, parser):
        parser.add_argument("csv")
        parser.add_argument("--dataset", required=True)
        parser.add_argument("--dry-run", action="store_true", help="list what would change; write nothing")
        parser.add_argument("--decide", action="store_true", help="approve/reject waiting assignments by the policy")

    def handle(self, *args, **opts):
        dataset = command_dataset(opts["dataset"])
        with command_errors():
            with transaction.atomic():
                n = gold_import_csv(dataset, opts["csv"])
                report = catch_trials_rescore(dataset, decide=opts["decide"])
                if opts["dry_run"]:
                    transaction.set_rollback(True)
        report.dry_run = opts["dry_run"]
        verb = "would import" if opts["dry_run"] else "imported"
        self.stdout.write(f"{verb} {n} gold label rows into dataset {dataset.name}")
        for line in report.lines():
            self.stdout.write(line)
