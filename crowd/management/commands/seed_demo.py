from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from crowd.services.demo import demo_hit_url, demo_seed


class Command(BaseCommand):
    help = "Create the demo dataset (synthetic clips, gold clips, users, open batches) if absent, and print logins."

    def add_arguments(self, parser):
        parser.add_argument(
            "--force",
            action="store_true",
            help="seed a production server too (DEBUG=0): demo accounts with random passwords, printed once",
        )

    def handle(self, *args, **opts):
        if not settings.DEVELOPMENT and not opts["force"]:
            raise CommandError(
                "seed_demo refused: this is a production server (DEBUG=0 and not AVCROWD_DEV=1), and the demo adds "
                "accounts that can write the gold standard; run it on a development server, or add --force "
                "(random passwords, printed once)"
            )
        result = demo_seed()
        base = settings.PUBLIC_BASE_URL
        if result["taxonomy_loaded"]:
            self.stdout.write("class list: none was loaded, so the default one was (python manage.py load_taxonomy)")
        state = "created" if result["created"] else "already present"
        self.stdout.write(f"demo dataset: {result['n_clips']} clips ({state})")
        user, password = result["admin"]
        self.stdout.write(f"admin login: {user} / {password}   ->  {base}/admin/")
        logins = ", ".join(
            f"{name} / {password or '(set before; reset with: python manage.py changepassword ' + name + ')'}"
            for name, password in result["experts"]
        )
        self.stdout.write(f"expert logins: {logins}")
        if result["batches"]:
            batch = result["batches"][0]
            self.stdout.write(f"batch ready to annotate: {demo_hit_url(base, batch)}")
        self.stdout.write(f"start page: {base}/")
