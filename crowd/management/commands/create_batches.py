import json
import random
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from catalog.http import command_dataset, command_errors
from crowd.selectors.batches import batches_gold_check
from crowd.services.batches import batches_create


class Command(BaseCommand):
    help = (
        "Build batches (HITs) from the dataset's clips that are in no batch yet: batch_size clips each, "
        "gold_per_batch of them gold catch trials at random positions. Proposals come from --proposals "
        "(JSON {video_id: [class names]}), else the active proposal set, else the original labels."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True)
        parser.add_argument("--proposals", help="JSON file {video_id: [class names]}")
        parser.add_argument("--seed", type=int, help="random seed (reproducible gold positions)")
        parser.add_argument(
            "--allow-without-gold",
            action="store_true",
            help="build batches even though the dataset has no gold clip (they have no catch trials and publishing "
            "refuses them until `rebuild_batches` once gold is imported)",
        )

    def handle(self, *args, **opts):
        dataset = command_dataset(opts["dataset"])
        proposals = None
        if opts["proposals"]:
            try:
                proposals = json.loads(Path(opts["proposals"]).read_text())
            except (OSError, ValueError) as exc:
                raise CommandError(f"{opts['proposals']}: cannot read a JSON object ({exc})") from exc
            if not isinstance(proposals, dict) or not all(isinstance(v, list) for v in proposals.values()):
                raise CommandError(f"{opts['proposals']}: expected a JSON object {{video_id: [class names]}}")
        rng = random.Random(opts["seed"]) if opts["seed"] is not None else None
        with command_errors():
            check = batches_gold_check(dataset)
            batches = batches_create(
                dataset, proposals=proposals, rng=rng, allow_without_gold=opts["allow_without_gold"]
            )
        if check["warning"] and batches:
            self.stderr.write(f"warning: {check['warning']}")
        if check["refusal"] and batches:
            self.stderr.write("warning: these batches have no catch trials; run rebuild_batches after import_gold")
        n_items = sum(b.items.count() for b in batches)
        self.stdout.write(f"created {len(batches)} batch(es) with {n_items} clip slots in dataset {dataset.name}")
        for b in batches:
            self.stdout.write(f"  /hit/{b.uuid}/")
