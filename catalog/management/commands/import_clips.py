from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from catalog.http import command_errors
from catalog.progress import progress_bar
from catalog.services.clips import clips_import_into, read_clip_csv, scan_media_dir


class Command(BaseCommand):
    help = (
        "Import clips into a dataset from a CSV (video_id,url[,original_label]; several labels separated "
        "by '|') or from a directory of media files (video id = file stem). All or nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("source", help="CSV file or directory of media files")
        parser.add_argument("--dataset", required=True, help="dataset name (created if absent)")
        parser.add_argument(
            "--link",
            action="store_true",
            help="reference local files in place instead of copying them into media storage",
        )
        parser.add_argument("--no-probe", action="store_true", help="skip decoding local files (faster, unsafe)")
        parser.add_argument(
            "--skip-existing",
            action="store_true",
            help="leave clips the dataset already has as they are and import the others (default: refuse the file)",
        )

    def handle(self, *args, **opts):
        source = Path(opts["source"])
        with command_errors():
            if source.is_dir():
                specs = scan_media_dir(source)
            elif source.is_file():
                specs = read_clip_csv(source)
            else:
                raise CommandError(f"{source}: no such file or directory")
            # validated first with no transaction open, then written in short bulk transactions (workers' autosaves
            # keep going meanwhile); a refused import leaves nothing behind, not even a new, empty dataset
            with progress_bar(total=len(specs), desc="clips", unit="clip") as bar:
                dataset, created, n = clips_import_into(
                    opts["dataset"],
                    specs,
                    copy_media=not opts["link"],
                    probe_media=not opts["no_probe"],
                    skip_existing=opts["skip_existing"],
                    bar=bar,
                )
        skipped = f"; {len(specs) - n} already there, left as they are" if opts["skip_existing"] else ""
        self.stdout.write(f"imported {n} clips into dataset {dataset.name}{' (new)' if created else ''}{skipped}")
