import csv
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from catalog.http import command_dataset
from catalog.selectors.taxonomy import class_names
from crowd.marketplace.crowdform import crowd_form_template
from crowd.models import Batch
from crowd.services.publish import HitSettings, batch_inputs, media_valid_seconds


class Command(BaseCommand):
    help = (
        "Write the batch-input CSV for MTurk's requester web UI (columns batch_id, clip_ids, video_urls, "
        "proposal_lists as Python-literal lists, the VGGSounder layout plus our batch and clip ids) and, with "
        "--template, the crowd-form HTML template that reads them (answers keyed by clip id). Media URLs served "
        "here stay valid for the HIT lifetime plus the review period (MTURK_HIT settings). Results downloaded "
        "from the requester site go back in with import_mturk_results."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True)
        parser.add_argument("--out", required=True, help="CSV file to write")
        parser.add_argument("--template", help="also write the HTML template for the requester UI here")
        parser.add_argument("--count", type=int, default=None)

    def handle(self, *args, **o):
        dataset = command_dataset(o["dataset"])
        batches = Batch.objects.filter(dataset=dataset, status=Batch.OPEN).order_by("created_at", "id")
        batches = list(batches[: o["count"]] if o["count"] else batches)
        if not batches:
            raise CommandError(f"dataset {dataset.name} has no open batches to export; create batches first")
        empty = [str(b.uuid) for b in batches if any(not i.is_gold and not i.proposals for i in b.items.all())]
        if empty:
            raise CommandError("batches with clips without proposals: " + ", ".join(empty[:10]))
        out = Path(o["out"])
        valid = media_valid_seconds(HitSettings.from_settings())
        with out.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(["batch_id", "clip_ids", "video_urls", "proposal_lists"])
            for b in batches:
                ids, urls, props = batch_inputs(b, valid_seconds=valid)
                w.writerow([str(b.uuid), repr(ids), repr(urls), repr(props)])
        self.stdout.write(f"wrote {len(batches)} row(s) to {out}")
        if o["template"]:
            Path(o["template"]).write_text(crowd_form_template(class_names()), encoding="utf-8")
            self.stdout.write(f"wrote the crowd-form template to {o['template']}")
