from django.core.management.base import BaseCommand

from catalog.http import command_dataset, command_errors
from labels.services.overlap import EM_ONLY, overlap_queue, overlap_report


class Command(BaseCommand):
    help = (
        "Adaptive overlap: list the clips whose merged labels are still uncertain (or that have fewer than "
        "--min-votes annotators) and what their next votes would cost; with --queue, batch them so that each clip "
        "gets just the votes it needs (a clip stops at --min-votes when its annotators agree or the merge is sure, "
        "and never gets more than --max-votes)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True)
        parser.add_argument("--min-votes", type=int, default=2)
        parser.add_argument("--max-votes", type=int, default=5)
        parser.add_argument(
            "--max-errors",
            type=float,
            default=1.5,
            help="a clip is done when its expected number of wrong (class, audible|visible) atoms is at most this",
        )
        parser.add_argument("--method", default="modality_ds", choices=EM_ONLY)
        parser.add_argument("--backend", default="mturk", choices=("mturk", "prolific"), help="for the cost estimate")
        parser.add_argument("--queue", action="store_true", help="create the batches for the waiting clips")
        parser.add_argument("--show", type=int, default=20, help="waiting clips listed (worst first)")

    def handle(self, *args, **opts):
        dataset = command_dataset(opts["dataset"])
        with command_errors():
            report = overlap_report(
                dataset,
                min_votes=opts["min_votes"],
                max_votes=opts["max_votes"],
                max_expected_errors=opts["max_errors"],
                method=opts["method"],
                backend=opts["backend"],
            )
            self.stdout.write(
                f"{dataset.name}: {report.clips} clips; {report.done} done, {report.queued} already queued, "
                f"{len(report.waiting)} waiting for {report.vote_slots} votes = {report.assignments} assignments, "
                f"about ${report.cost_usd} on {opts['backend']} (reward ${report.reward_usd} per assignment); "
                f"finishing costs at most {report.max_assignments} assignments, ${report.max_cost_usd} (every clip "
                f"that is not done taken to {report.params['max_votes']} votes)"
            )
            for r in report.waiting[: opts["show"]]:
                self.stdout.write(
                    f"  {r['video_id']:<30} votes {r['votes']}  expected wrong atoms {r['expected_errors']:.2f}  "
                    f"+{r['wanted']}"
                )
            if opts["queue"]:
                batches = overlap_queue(report)
                self.stdout.write(f"queued {len(batches)} batches for {len(report.waiting)} clips")
