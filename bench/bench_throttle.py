"""Benchmark (not a test): what the HIT API's rate limits cost per request (catalog.throttles).

    .venv/bin/python bench/bench_throttle.py [--redis redis://127.0.0.1:6379/11] [--n 5000]

Every autosave passes two throttle checks (per address, per assignment). Prints the mean time of one check on this
process's memory and on Redis (the production cache), and of an autosave's two checks on Redis: one after another
through Django's cache API (`incr`: EXISTS + INCRBY, i.e. four round trips) and as `throttle_checks` runs them (one
server-side script, one round trip).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--redis", default=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/11"))
    ap.add_argument("--n", type=int, default=5000)
    args = ap.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("AVCROWD_DEV", "1")
    os.environ["AVCROWD_ENV_FILE"] = ""
    import django  # noqa: PLC0415 - set up after the environment above

    django.setup()
    from django.conf import settings  # noqa: PLC0415
    from django.test import RequestFactory  # noqa: PLC0415
    from django.test.utils import override_settings  # noqa: PLC0415
    from rest_framework.throttling import SimpleRateThrottle  # noqa: PLC0415

    from catalog.throttles import _KeyedThrottle, throttle_check, throttle_checks  # noqa: PLC0415

    limit = f"{args.n * 10}/minute"
    settings.HIT_THROTTLE_RATES = dict(settings.HIT_THROTTLE_RATES, hit_write_assignment=limit, hit_write_ip=limit)
    # DRF's sliding window keeps one timestamp per request in the window: the same as a busy assignment's
    request = RequestFactory().put("/api/hit/assignments/x/answers/y", REMOTE_ADDR="192.0.2.1")
    for name, backend in (
        ("memory", {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}),
        ("redis", {"BACKEND": "catalog.cache.RedisCache", "LOCATION": args.redis}),
    ):
        with override_settings(CACHES={"default": {**backend, "KEY_PREFIX": f"bench-{uuid.uuid4().hex[:8]}"}}):
            ident = uuid.uuid4().hex
            throttle_check(request, "hit_write_assignment", ident, "bench")  # connect
            start = time.perf_counter()
            for _ in range(args.n):
                throttle_check(request, "hit_write_assignment", ident, "bench")
            per = (time.perf_counter() - start) / args.n
            # DRF's own sliding window on the same key scheme: the list of request times read and written back
            drf = _KeyedThrottle("hit_write_assignment", uuid.uuid4().hex)
            start = time.perf_counter()
            for _ in range(args.n):
                SimpleRateThrottle.allow_request(drf, request, None)
            per_drf = (time.perf_counter() - start) / args.n
            pair = [("hit_write_ip", uuid.uuid4().hex, "bench"), ("hit_write_assignment", uuid.uuid4().hex, "bench")]
            start = time.perf_counter()
            for _ in range(args.n):
                for scope, ident, _what in pair:
                    _KeyedThrottle(scope, ident).allow_request(request, None)
            per_seq = (time.perf_counter() - start) / args.n
            start = time.perf_counter()
            for _ in range(args.n):
                throttle_checks(request, pair)
            per_pair = (time.perf_counter() - start) / args.n
        print(
            f"{name:6s}: {per * 1e6:7.1f} µs per check (fixed window), {per_drf * 1e6:7.1f} µs with DRF's sliding "
            f"window ({args.n} requests on one key); an autosave's two checks: {per_seq * 1e6:7.1f} µs one after "
            f"another through the cache API, {per_pair * 1e6:7.1f} µs as throttle_checks runs them"
        )


if __name__ == "__main__":
    main()
