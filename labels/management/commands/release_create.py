import json

from django.core.management.base import BaseCommand

from catalog.http import command_dataset, command_errors
from catalog.progress import progress_bar
from labels.core.merge import METHODS
from labels.services.create import release_create, release_requeue_needs_annotation


class Command(BaseCommand):
    help = (
        "Create an immutable release: merge the dataset's approved annotations (top-k majority by default), "
        "close over synonyms/superclasses and store it."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True)
        parser.add_argument("--name", required=True, help="release name, e.g. v1 (unique per dataset)")
        parser.add_argument("--method", default="majority", choices=METHODS)
        parser.add_argument(
            "--k",
            type=int,
            default=None,
            help="annotators kept per clip / annotations required (default: the dataset's annotations_per_clip)",
        )
        parser.add_argument(
            "--no-gold-override",
            action="store_true",
            help="do not replace gold clips' merged labels by their gold labels",
        )
        parser.add_argument("--no-experts", action="store_true", help="leave in-house expert annotations out")
        parser.add_argument(
            "--requeue", action="store_true", help="send clips that need annotation back to the queue as new batches"
        )

    def handle(self, *args, **opts):
        dataset = command_dataset(opts["dataset"])
        params = {"k": opts["k"]} if opts["k"] else {}
        with command_errors(), progress_bar(desc="release", unit="step") as bar:
            release = release_create(
                dataset,
                opts["name"],
                method=opts["method"],
                params=params,
                gold_override=not opts["no_gold_override"],
                include_experts=not opts["no_experts"],
                bar=bar,
            )
        s = release.stats
        self.stdout.write(
            f"release {dataset.name}/{release.name} ({release.method}, k={release.params.get('k')}): "
            f"{s['clips']} clips, {s['labels']} labels ({s['labels_per_clip_mean']:.2f} per clip), "
            f"modality {json.dumps(s['modality_shares'])}, origins {json.dumps(s['origin_counts'])}"
        )
        self.stdout.write(f"meta shares {json.dumps(s['meta_shares'])}")
        ag = s.get("agreement", {})
        self.stdout.write(
            "Krippendorff alpha: "
            + ", ".join(
                f"{k} {ag.get(k) if ag.get(k) is not None else 'n/a'}"
                for k in ("audible", "visible", "background_music", "voice_over", "static_image")
            )
        )
        if s["needs_annotation"]:
            self.stdout.write(
                f"{s['needs_annotation']} clips need annotation ({s['needs_annotation_with_some']} "
                f"have some approved annotations)"
            )
            if opts["requeue"]:
                with command_errors():
                    batches = release_requeue_needs_annotation(release)
                self.stdout.write(f"re-queued as {len(batches)} new batches")
