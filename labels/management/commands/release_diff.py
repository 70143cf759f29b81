import json

from django.core.management.base import BaseCommand

from catalog.http import command_errors
from labels.selectors.releases import release_find
from labels.services.diff import release_diff, release_diff_text


class Command(BaseCommand):
    help = "List what changed between two releases: added/removed labels, modality and meta changes, per clip."

    def add_arguments(self, parser):
        parser.add_argument("a", help="release name (or DATASET/NAME)")
        parser.add_argument("b", help="release name (or DATASET/NAME)")
        parser.add_argument("--dataset", default=None)
        parser.add_argument("--all", action="store_true", help="list every changed clip (default: first 50)")
        parser.add_argument("--json", action="store_true", help="print the full diff as JSON")

    def handle(self, *args, **opts):
        with command_errors():
            a = release_find(opts["a"], opts["dataset"])
            b = release_find(opts["b"], opts["dataset"])
            diff = release_diff(a, b)
        if opts["json"]:
            self.stdout.write(json.dumps(diff, indent=1))
        else:
            self.stdout.write(release_diff_text(diff, None if opts["all"] else 50))
