"""Benchmark (not a test): the ops pages on a large dataset.

    .venv/bin/python bench/bench_pages.py --db postgres://postgres@127.0.0.1:5432/avcrowd_bench_releases

Re-uses the database that bench/bench_releases.py --phase setup made (dataset "bench", --scale 1 or 10: 15,446
or 154,460 clips with 3 approved answers each), adds one HIT per batch and an admin account (once), then fetches
each page 3 times through Django's test client (settings_test: static files without a manifest; the whole request:
middleware, queries, template) and prints min / median seconds, the number of SQL queries and the response size.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PAGES = [
    "/ops/",
    "/ops/bench/",
    "/ops/bench/clips/?accepted=3%2B",
    "/ops/bench/clips/?accepted=1",
    "/ops/bench/hits/",
    "/ops/bench/hits/?status=open",
    "/ops/bench/assignments/?status=approved",
]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", required=True)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    os.environ.update(
        {
            "DATABASE_URL": args.db,
            "DJANGO_SETTINGS_MODULE": "config.settings_test",
            "AVCROWD_DEV": "1",
            "LOG_LEVEL": "WARNING",
        }
    )
    import django  # noqa: PLC0415

    django.setup()
    from django.conf import settings  # noqa: PLC0415
    from django.contrib.auth import get_user_model  # noqa: PLC0415
    from django.db import connection  # noqa: PLC0415
    from django.test import Client  # noqa: PLC0415
    from django.test.utils import CaptureQueriesContext  # noqa: PLC0415

    from catalog.models import Clip  # noqa: PLC0415
    from crowd.models import Batch, Hit  # noqa: PLC0415

    settings.ALLOWED_HOSTS = ["*"]
    settings.SECURE_SSL_REDIRECT = False
    if not Hit.objects.filter(batch__dataset__name="bench").exists():
        Hit.objects.bulk_create(
            [
                Hit(
                    batch_id=b,
                    external_id=f"H{b}",
                    status="open" if b % 3 else "reviewable",
                    reward=Decimal("1.00"),
                    max_assignments=3,
                    target_assignments=3,
                    unique_request_token=f"bench-{b}",
                )
                for b in Batch.objects.filter(dataset__name="bench").values_list("id", flat=True)
            ],
            batch_size=5000,
        )
    admin, _ = get_user_model().objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(admin)
    n_clips = Clip.objects.filter(dataset__name="bench").count()
    n_hits = Hit.objects.filter(batch__dataset__name="bench").count()
    print(f"{connection.vendor}: {n_clips} clips, {n_hits} HITs")
    for url in PAGES:
        times, queries, size = [], 0, 0
        for _ in range(args.repeat):
            with CaptureQueriesContext(connection) as ctx:
                t0 = time.perf_counter()
                resp = client.get(url)
                times.append(time.perf_counter() - t0)
            assert resp.status_code == 200, (url, resp.status_code)
            queries, size = len(ctx.captured_queries), len(resp.content)
        print(
            f"  {url:42s} min {min(times):6.3f} s  median {statistics.median(times):6.3f} s  "
            f"{queries:3d} queries  {size / 1e6:6.2f} MB"
        )


if __name__ == "__main__":
    main()
