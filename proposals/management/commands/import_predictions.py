from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils.text import slugify

from catalog.errors import AvcrowdError
from proposals.services import run_import

from ._common import get_dataset


class Command(BaseCommand):
    help = (
        "Import predictions of a model run elsewhere as a model run of a dataset: a VGGSounder pickle "
        "({video_id: {'predictions': {a|v|av: [names]}, 'logits': {a|v|av: [309 floats]}}}, loaded with a "
        "restricted unpickler), a CSV label list (video_id,input,label), a JSONL label list "
        '({"video_id", "a": [...], ...}) or an .npz artifact. Re-importing a name replaces its run.'
    )

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", help=".pkl/.pickle, .csv, .jsonl or .npz")
        parser.add_argument("--dataset", required=True)
        parser.add_argument("--name", help="model name (default: the file stem; one file only)")
        parser.add_argument(
            "--allow-unknown-clips",
            action="store_true",
            help="skip predictions for clips that are not in the dataset instead of refusing",
        )

    def handle(self, *args, **opts):
        dataset = get_dataset(opts["dataset"])
        files = opts["files"]
        if opts["name"] and len(files) > 1:
            raise CommandError("--name needs exactly one file")

        for path in files:
            name = opts["name"] or slugify(Path(path).stem)
            try:
                run = run_import(dataset, name, path, allow_unknown_clips=opts["allow_unknown_clips"])
            except AvcrowdError as exc:
                raise CommandError(exc.as_text()) from exc
            skipped = f", {len(run.errors)} skipped" if run.errors else ""
            self.stdout.write(
                f"imported {run.n_clips} clips of {name!r} ({run.kind}: "
                f"{', '.join(run.modalities)}){skipped} into dataset {dataset.name}"
            )
