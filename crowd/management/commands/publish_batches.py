from decimal import Decimal, InvalidOperation

from django.core.management.base import BaseCommand, CommandError

from catalog.errors import AvcrowdError
from catalog.http import command_dataset
from crowd.marketplace import MarketplaceError
from crowd.services.publish import HitSettings, batches_publish


class Command(BaseCommand):
    help = (
        "Publish open batches of a dataset as MTurk HITs (or Prolific studies). Prints the HITs and the cost "
        "(reward x assignments + MTurk fee); refuses to exceed the dataset's budget. --dry-run sends nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True)
        parser.add_argument("--count", type=int, default=None, help="number of batches (default: all unpublished)")
        env = parser.add_mutually_exclusive_group()
        env.add_argument("--sandbox", dest="sandbox", action="store_true", default=True, help="MTurk sandbox (default)")
        env.add_argument("--production", dest="sandbox", action="store_false", help="real MTurk: real money")
        parser.add_argument("--dry-run", action="store_true", help="print the HITs and the cost, send nothing")
        parser.add_argument("--backend", choices=["mturk", "prolific"], default="mturk")
        parser.add_argument(
            "--mode",
            choices=["external", "html"],
            default="external",
            help="external: our HIT page (needs PUBLIC_BASE_URL https); html: self-contained crowd-form HTMLQuestion",
        )
        parser.add_argument("--reward", help="USD per assignment (default: expected minutes at $7.25/h)")
        parser.add_argument("--masters", action="store_true", help="require the Masters qualification")
        parser.add_argument("--min-approval-rate", type=int, default=None)
        parser.add_argument("--min-approved-hits", type=int, default=None)
        parser.add_argument(
            "--locale", action="append", default=None, help="worker locale, e.g. US or US-CA (repeatable; default US)"
        )
        parser.add_argument("--lifetime-hours", type=float, default=None)
        parser.add_argument(
            "--passed-gold-only",
            action="store_true",
            help="Prolific: only participants whose check-clip F1 passed (an allow-list participant group; "
            "needs PROLIFIC_WORKSPACE_ID)",
        )

    def handle(self, *args, **o):
        dataset = command_dataset(o["dataset"])
        try:
            reward = Decimal(o["reward"]) if o["reward"] else None
        except InvalidOperation:
            raise CommandError(f"--reward {o['reward']!r} is not a number of dollars, e.g. 1.85")
        hs = HitSettings.from_settings(
            masters=o["masters"] or None,
            min_approval_rate=o["min_approval_rate"],
            min_approved_hits=o["min_approved_hits"],
            locales=tuple(o["locale"]) if o["locale"] else None,
            lifetime_seconds=int(o["lifetime_hours"] * 3600) if o["lifetime_hours"] else None,
            passed_gold_only=o["passed_gold_only"] or None,
        )
        try:
            result = batches_publish(
                dataset,
                count=o["count"],
                backend=o["backend"],
                sandbox=o["sandbox"],
                dry_run=o["dry_run"],
                mode=o["mode"],
                reward=reward,
                hit_settings=hs,
                echo=self.stdout.write,
            )
        except AvcrowdError as exc:
            raise CommandError(exc.as_text()) from exc
        except MarketplaceError as exc:
            raise CommandError(exc.message) from exc
        s = result.summary()
        if o["dry_run"]:
            self.stdout.write(f"dry run: {s['planned']} HIT(s), ${s['cost_usd']}; nothing was sent")
            return
        self.stdout.write(f"published {s['created']} of {s['planned']} HIT(s); {s['failed']} failed")
        if s["failed"]:
            raise CommandError("some HITs failed:\n" + "\n".join(s["errors"]))
