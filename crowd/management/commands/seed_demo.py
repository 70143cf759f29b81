from django.conf import settings
from django.core.management.base import BaseCommand

from crowd.services.demo import demo_hit_url, demo_seed


class Command(BaseCommand):
    help = "Create the demo dataset (synthetic clips, gold clips, users, open batches) if absent, and print logins."

    def handle(self, *args, **opts):
        result = demo_seed()
        base = settings.PUBLIC_BASE_URL
        if result["taxonomy_loaded"]:
            self.stdout.write("class list: none was loaded, so the default one was (python manage.py load_taxonomy)")
        state = "created" if result["created"] else "already present"
        self.stdout.write(f"demo dataset: {result['n_clips']} clips ({state})")
        user, password = result["admin"]
        self.stdout.write(f"admin login: {user} / {password}   ->  {base}/admin/")
        self.stdout.write("expert logins: expert1 / expert1-demo, expert2 / expert2-demo, expert3 / expert3-demo")
        if result["batches"]:
            batch = result["batches"][0]
            self.stdout.write(f"batch ready to annotate: {demo_hit_url(base, batch)}")
        self.stdout.write(f"start page: {base}/")
