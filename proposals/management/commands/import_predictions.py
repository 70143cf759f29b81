from pathlib import Path

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.management.base import BaseCommand, CommandError

from catalog.http import command_errors
from proposals.models import model_name_validator
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
        parser.add_argument(
            "--name",
            help="model name, kept as given, e.g. gemini-1.5-flash (default: the file stem; one file only)",
        )
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
            name = opts["name"] or Path(path).stem
            try:
                model_name_validator(name)
            except DjangoValidationError as exc:
                raise CommandError(f"model name {name!r}: {exc.messages[0]}; give one with --name") from None
            with command_errors():
                run = run_import(dataset, name, path, allow_unknown_clips=opts["allow_unknown_clips"])
            skipped = f", {len(run.errors)} skipped" if run.errors else ""
            self.stdout.write(
                f"imported {run.n_clips} clips of {name!r} ({run.kind}: "
                f"{', '.join(run.modalities)}){skipped} into dataset {dataset.name}"
            )
