import json

from django.core.management.base import BaseCommand, CommandError

from catalog.errors import AvcrowdError
from catalog.http import command_errors
from catalog.progress import progress_bar
from proposals.models import ModelRun
from proposals.services import checkpoint_get, checkpoint_register
from proposals.tasks import run_start

from ._common import get_dataset


class Command(BaseCommand):
    help = (
        "Compute predictions of a registered checkpoint on every clip of a dataset: one task per chunk on "
        "the Celery queue 'gpu' (in-process when no broker is configured). Re-running resumes: finished "
        "chunks are not redone."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True)
        parser.add_argument("--checkpoint", required=True, help="name of a registered ModelCheckpoint")
        parser.add_argument("--chunk-size", type=int, default=256)
        parser.add_argument("--modalities", default="a,v,av", help="comma-separated subset of a,v,av")
        parser.add_argument("--restart", action="store_true", help="drop finished chunks and start over")
        parser.add_argument(
            "--register",
            nargs=2,
            metavar=("ARCH", "PATH"),
            help="register/update the checkpoint first: architecture (cavmae|leap|crab) and "
            "weights path ('' for random init)",
        )
        parser.add_argument("--config", default="{}", help='models_zoo config JSON, e.g. {"preset": "tiny"}')

    def handle(self, *args, **opts):
        dataset = get_dataset(opts["dataset"])
        with command_errors():
            if opts["register"]:
                try:
                    config = json.loads(opts["config"])
                except json.JSONDecodeError as exc:
                    raise CommandError(f"--config is not valid JSON: {exc}") from None
                ckpt = checkpoint_register(opts["checkpoint"], opts["register"][0], opts["register"][1], config)
            else:
                try:
                    ckpt = checkpoint_get(opts["checkpoint"])
                except AvcrowdError as exc:
                    raise CommandError(
                        f"{exc.message} (register one with --register ARCH PATH or in the admin)"
                    ) from None
            with progress_bar(desc="computing", unit="chunk") as bar:
                run = run_start(
                    dataset,
                    ckpt,
                    chunk_size=opts["chunk_size"],
                    modalities=[m.strip() for m in opts["modalities"].split(",") if m.strip()],
                    restart=opts["restart"],
                    bar=bar,
                )
        run = ModelRun.objects.get(pk=run.pk)
        speed = f", {run.clips_per_s:.1f} clips/s" if run.clips_per_s else ""
        self.stdout.write(
            f"run {run.pk} ({ckpt.name} on {dataset.name}): {run.status}, "
            f"{run.n_done}/{run.n_clips} clips{speed}, {len(run.errors)} clip error(s)/warning(s)"
        )
