from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from catalog.errors import AvcrowdError
from catalog.models import TaxonomyClass
from catalog.services.taxonomy import taxonomy_load
from catalog.storage import bucket_ensure


class Command(BaseCommand):
    help = (
        "Prepare a deployment before the web server and the workers start (docker compose's `init` service): "
        "apply migrations, load the class list if the database has none, create the media bucket if missing. "
        "Safe to run on every start."
    )

    def handle(self, *args, **opts):
        call_command("migrate", interactive=False, verbosity=1)
        if TaxonomyClass.objects.exists():
            self.stdout.write(f"class list: {TaxonomyClass.objects.count()} classes present (left as they are)")
        else:
            try:
                result = taxonomy_load()
            except AvcrowdError as exc:
                raise CommandError(exc.as_text()) from exc
            self.stdout.write(f"class list: loaded {result['classes']} classes, {result['relations']} relations")
        bucket = settings.AWS_STORAGE_BUCKET_NAME
        if not bucket:
            self.stdout.write(f"media: local files under {settings.MEDIA_ROOT} (no AWS_STORAGE_BUCKET_NAME)")
            return
        try:
            created = bucket_ensure(bucket)
        except Exception as exc:  # noqa: BLE001 - botocore's errors name the endpoint and the reason
            raise CommandError(
                f"media bucket {bucket!r} at {settings.AWS_S3_ENDPOINT_URL or 'AWS S3'}: {type(exc).__name__}: {exc}"
            ) from exc
        self.stdout.write(f"media bucket {bucket!r}: {'created' if created else 'present'}")
