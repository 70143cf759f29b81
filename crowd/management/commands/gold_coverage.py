import json

from django.core.management.base import BaseCommand

from catalog.http import command_dataset
from catalog.models import Clip
from crowd.services.gold import gold_coverage


class Command(BaseCommand):
    help = "How many of the classes the gold set covers, the missing ones, and clips to label next."

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True)
        parser.add_argument("--json", action="store_true", help="print the result as JSON")

    def handle(self, *args, **opts):
        dataset = command_dataset(opts["dataset"])
        cov = gold_coverage(dataset)
        if opts["json"]:
            self.stdout.write(json.dumps(cov, indent=2))
            return
        self.stdout.write(f"gold covers {cov['covered']} of {cov['total']} classes in dataset {dataset.name}")
        if cov["missing"]:
            self.stdout.write(
                f"missing ({len(cov['missing'])}): "
                + "; ".join(cov["missing"][:40])
                + (" ..." if len(cov["missing"]) > 40 else "")
            )
            vids = dict(Clip.objects.filter(pk__in=cov["suggested_clips"]).values_list("pk", "video_id"))
            self.stdout.write(
                "suggested clips to label: "
                + (
                    ", ".join(vids[p] for p in cov["suggested_clips"])
                    or "(none: no clip has a missing class as its original label)"
                )
            )
