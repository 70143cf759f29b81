from django.core.management.base import BaseCommand

from catalog.http import command_errors
from catalog.services.taxonomy import taxonomy_load


class Command(BaseCommand):
    help = "Load the class list (default: the 309 VGGSound classes from the vggsounder package) and class relations."

    def add_arguments(self, parser):
        parser.add_argument("--classes", help="CSV with index,mid,display_name (default: vggsounder classes.csv)")
        parser.add_argument(
            "--relations", help="CSV with kind,source,target (default: catalog/data/class_relations.csv)"
        )

    def handle(self, *args, **opts):
        with command_errors():
            result = taxonomy_load(opts.get("classes"), opts.get("relations"))
        self.stdout.write(
            f"taxonomy: {result['classes']} classes ({result['created']} new), "
            f"{result['relations']} relations ({result['relations_added']} new)"
        )
