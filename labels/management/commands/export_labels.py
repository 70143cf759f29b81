import sys

from django.core.management.base import BaseCommand, CommandError

from catalog.errors import AvcrowdError
from catalog.progress import progress_bar
from labels.selectors.releases import release_find
from labels.services.export import EXPORT_FORMATS, export_chunks, release_export_to_file, release_row_count
from labels.services.interop import release_hf_export

HF_DATASET = "hf-dataset"


class Command(BaseCommand):
    help = (
        "Export a release: VGGSounder CSV (video_id,label,modality,background_music,static_image,voice_over), "
        "JSON Lines or Parquet (clips with background music are left out unless --include-background-music); or "
        "hf-dataset: a folder for Hugging Face `datasets` (Parquet, one row per clip, all clips, plus a README.md "
        "dataset card with the label schema, the release's quality figures and provenance)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--release", required=True, help="release name (or DATASET/NAME)")
        parser.add_argument("--dataset", default=None)
        parser.add_argument("--format", default="vggsounder-csv", choices=(*EXPORT_FORMATS, HF_DATASET))
        parser.add_argument("--include-background-music", action="store_true")
        parser.add_argument(
            "--out", required=True, help="output file ('-' for stdout, not for parquet); a folder for hf-dataset"
        )

    def handle(self, *args, **opts):
        try:
            release = release_find(opts["release"], opts["dataset"])
            if opts["format"] == HF_DATASET:
                if opts["out"] == "-":
                    raise CommandError("hf-dataset is a folder: give --out DIR")
                files = release_hf_export(release, opts["out"])
                self.stderr.write("wrote " + ", ".join(str(f) for f in files))
                return
            if opts["out"] == "-":
                if opts["format"] == "parquet":
                    raise CommandError("parquet is binary: give --out FILE")
                for chunk in export_chunks(
                    release, opts["format"], include_background_music=opts["include_background_music"]
                ):
                    sys.stdout.buffer.write(chunk)
                return
            total = release_row_count(release, include_background_music=opts["include_background_music"])
            with progress_bar(total=total, desc=f"exporting {opts['format']}", unit="row") as bar:
                done = [0]

                def advance(rows_done):
                    bar.update(rows_done - done[0])
                    done[0] = rows_done

                size = release_export_to_file(
                    release,
                    opts["format"],
                    opts["out"],
                    include_background_music=opts["include_background_music"],
                    progress=advance,
                )
        except AvcrowdError as exc:
            raise CommandError(exc.as_text()) from exc
        except OSError as exc:
            raise CommandError(f"{opts['out']}: cannot write ({exc.strerror})") from exc
        self.stderr.write(f"wrote {opts['out']} ({size} bytes)")
