from django.core.management.base import BaseCommand

from catalog.http import command_errors
from catalog.services.users import ROLES, user_create


class Command(BaseCommand):
    help = (
        "Create an account: admin (staff, the admin site), researcher (read + export through the API; prints an "
        "API token) or annotator (in-house labelling and the gold-standard page)."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=ROLES)
        parser.add_argument("--email", default="")
        parser.add_argument("--password", help="default: a random one, printed once")

    def handle(self, *args, **opts):
        with command_errors():
            out = user_create(opts["username"], opts["role"], email=opts["email"], password=opts["password"])
        self.stdout.write(f"created {opts['role']} {out['user'].username} (password: {out['password']})")
        if out["token"]:
            self.stdout.write(f"API token: {out['token']}   (send as: Authorization: Token {out['token']})")
