from django.core.management.base import BaseCommand, CommandError

from catalog.errors import AvcrowdError
from catalog.http import command_dataset
from labels.services.interop import votes_crowdkit_csv


class Command(BaseCommand):
    help = (
        "Export a dataset's raw votes in crowd-kit's layout: CSV worker,task,label with binary atoms as tasks "
        "(<video_id>|<class>|audible, <video_id>|<class>|visible for every class shown or ticked, "
        "<video_id>|<meta label>) and label 1/0. The votes every merge reads: approved, verified work, one vote "
        "per worker and clip, plus expert annotations. Load with pandas.read_csv and give it to crowdkit's "
        "aggregators (MajorityVote, DawidSkene, ...)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True)
        parser.add_argument("--out", required=True, help="CSV file to write")

    def handle(self, *args, **opts):
        dataset = command_dataset(opts["dataset"])
        try:
            n = votes_crowdkit_csv(dataset, opts["out"])
        except AvcrowdError as exc:
            raise CommandError(exc.as_text()) from exc
        except OSError as exc:
            raise CommandError(f"{opts['out']}: cannot write ({exc.strerror})") from exc
        self.stderr.write(f"wrote {n} votes to {opts['out']}")
