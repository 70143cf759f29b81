from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.management.base import BaseCommand, CommandError

from benchmark.predictions import unknown_names_text
from catalog.http import command_errors
from proposals.core.predictions_io import PredictionFileError, group_prediction_files
from proposals.models import model_name_validator
from proposals.services import run_import, run_import_prepare

from ._common import get_dataset


class Command(BaseCommand):
    help = (
        "Import predictions of a model run elsewhere as a model run of a dataset: a VGGSounder pickle "
        "({video_id: {'predictions': {a|v|av: [names]}, 'logits': {a|v|av: [309 floats]}}}, a defaultdict as "
        "published, loaded with a restricted unpickler), a CSV label list (video_id,input,label), a JSONL label "
        'list ({"video_id", "a": [...], ...}), an .npz artifact, or the LLM-judged CSVs VGGSounder publishes '
        "(csv/{a,v,av}/predictions-<model>.csv with a suggestions column: give the files or the csv/ directory; "
        "one run per model). Class names outside the taxonomy are skipped and counted (--strict refuses them). "
        "Re-importing a name replaces its run."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "files", nargs="+", help=".pkl/.pickle, .csv, .jsonl or .npz files, or a directory of judged CSVs"
        )
        parser.add_argument("--dataset", required=True)
        parser.add_argument(
            "--name",
            help="model name, kept as given, e.g. gemini-1.5-flash (default: the file stem, or the model of "
            "judged CSVs; one model only)",
        )
        parser.add_argument(
            "--allow-unknown-clips",
            action="store_true",
            help="skip predictions for clips that are not in the dataset instead of refusing",
        )
        parser.add_argument(
            "--strict",
            action="store_true",
            help="refuse a file holding a class name outside the taxonomy (default: skip such names and report "
            "how often each occurred)",
        )

    def handle(self, *args, **opts):
        dataset = get_dataset(opts["dataset"])
        try:
            groups = group_prediction_files(opts["files"])
        except PredictionFileError as exc:
            raise CommandError(str(exc)) from None
        if opts["name"] and len(groups) > 1:
            raise CommandError(f"--name needs exactly one model; these files hold {len(groups)}")
        # every name and every file is checked before anything is imported: a refused file changes nothing
        named = []
        for model, paths in groups:
            name = opts["name"] or model or paths[0].stem
            try:
                model_name_validator(name)
            except DjangoValidationError as exc:
                raise CommandError(f"model name {name!r}: {exc.messages[0]}; give one with --name") from None
            named.append((name, [str(p) for p in paths] if model is not None else str(paths[0])))
        options = {"allow_unknown_clips": opts["allow_unknown_clips"], "strict": opts["strict"]}
        with command_errors():
            prepared = [run_import_prepare(dataset, name, path, **options) for name, path in named]
        for (name, path), ready in zip(named, prepared):
            with command_errors():
                run = run_import(dataset, name, path, prepared=ready, **options)
            skipped = sum(1 for e in run.errors if "video_id" in e)
            skipped = f", {skipped} clips not in the dataset skipped" if skipped else ""
            self.stdout.write(
                f"imported {run.n_clips} clips of {name!r} ({run.kind}: "
                f"{', '.join(run.modalities)}){skipped} into dataset {dataset.name}"
            )
            unknown = {e["class_name"]: e["count"] for e in run.errors if "class_name" in e}
            if unknown:
                self.stdout.write(self.style.WARNING(f"  {name}: {unknown_names_text(unknown)}"))
