"""The production cache (catalog.cache.RedisCache on a real Redis): Django's cache API unchanged, one Redis client
built per server rather than one per call, safe to share between a gunicorn worker's threads. The process-memory
cache (catalog.cache.LocMemCache) counts the rate limits' counters in one step, with the results of Django's API."""

import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
import redis
from django.core.cache.backends.locmem import LocMemCache as DjangoLocMemCache

from catalog.cache import LocMemCache, RedisCache

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("CACHE_URL") or os.environ.get("CELERY_BROKER_URL", "")
needs_redis = pytest.mark.skipif(
    not REDIS_URL.startswith("redis"), reason="needs Redis (CELERY_BROKER_URL or CACHE_URL)"
)


def _cache():
    return RedisCache(REDIS_URL, {"KEY_PREFIX": f"avc-test-{uuid.uuid4().hex}"})


@needs_redis
def test_the_cache_api_works_as_djangos_and_builds_one_client(monkeypatch):
    built = []
    original = redis.Redis.__init__

    def counted(self, *a, **kw):
        built.append(1)
        original(self, *a, **kw)

    monkeypatch.setattr(redis.Redis, "__init__", counted)
    cache = _cache()
    try:
        cache.set("a", {"x": 1}, 60)
        assert cache.get("a") == {"x": 1}
        assert cache.add("a", 2) is False and cache.add("b", 5, 60) is True
        assert cache.incr("b") == 6 and cache.incr("b", 4) == 10
        with pytest.raises(ValueError):
            cache.incr("missing")
        assert cache.get_many(["a", "b", "missing"]) == {"a": {"x": 1}, "b": 10}
        assert cache.delete("a") is True and cache.get("a", "gone") == "gone"
        cache.set("c", 1, 0)  # timeout 0: not kept, as Django documents
        assert cache.get("c") is None
        assert len(built) == 1  # one client for every call above (Django's own builds one per call)
    finally:
        cache.delete_many(["a", "b", "c"])


@needs_redis
def test_threads_sharing_the_cache_count_every_increment():
    cache = _cache()
    cache.set("n", 0, 60)

    def bump():
        for _ in range(200):
            cache.incr("n")

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cache.get("n") == 800
    cache.delete("n")


def test_a_redis_cache_url_selects_this_backend():
    code = "import django; django.setup(); from django.conf import settings; print(settings.CACHES['default'])"
    env = dict(
        os.environ, DJANGO_SETTINGS_MODULE="config.settings", AVCROWD_DEV="1", CACHE_URL="redis://127.0.0.1:6379/5"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert "'BACKEND': 'catalog.cache.RedisCache'" in out.stdout and "redis://127.0.0.1:6379/5" in out.stdout


# --- the process-memory cache (no CACHE_URL): rate-limit counters counted in one step ---------------------------


def _memory(name=None):
    return LocMemCache(name or f"avc-test-{uuid.uuid4().hex}", {})


def _counted_through_djangos_api(cache, key, limit, timeout) -> bool:
    """One counter counted as catalog.throttles counts it on any other cache: incr, else add."""
    try:
        count = cache.incr(key)
    except ValueError:
        if cache.add(key, 1, timeout=timeout):
            return True
        count = cache.incr(key)
    return count <= limit


def test_counting_in_one_step_gives_what_djangos_incr_and_add_give():
    """Per request, the counters of (address, assignment) in order, stopping at the first over its limit: the
    values stored, the refusals, and the counters left uncounted are those of Django's API one call at a time."""
    import random

    rng = random.Random(7)
    ours, djangos = _memory(), DjangoLocMemCache(f"avc-test-{uuid.uuid4().hex}", {})
    limits = {"ip:a": 9, "ip:b": 40, "as:1": 5, "as:2": 12, "as:3": 3}
    for _ in range(300):
        keys = [rng.choice(["ip:a", "ip:b"]), rng.choice(["as:1", "as:2", "as:3"])]
        position = ours.count_in_order(keys, [limits[k] for k in keys], [61, 61])
        expected = next(
            (i for i, k in enumerate(keys, 1) if not _counted_through_djangos_api(djangos, k, limits[k], 61)), 0
        )
        assert position == expected
    assert {k: ours.get(k) for k in limits} == {k: djangos.get(k) for k in limits}
    assert ours.get("ip:a") > limits["ip:a"]  # some requests were refused: the sequence tested both outcomes


def test_a_counter_restarts_when_its_window_expires_and_when_the_cache_is_cleared(monkeypatch):
    from django.core.cache.backends import locmem

    now = [1_000_000.0]
    monkeypatch.setattr(locmem.time, "time", lambda: now[0])
    cache = _memory()
    assert [cache.count_in_order(["k"], [2], [61]) for _ in range(3)] == [0, 0, 1]
    assert cache.get("k") == 3
    now[0] += 60
    assert cache.count_in_order(["k"], [2], [61]) == 1 and cache.get("k") == 4  # same window
    now[0] += 2
    assert cache.get("k") is None  # expired with its window
    assert cache.count_in_order(["k"], [2], [61]) == 0 and cache.get("k") == 1
    cache.clear()
    assert cache.count_in_order(["k"], [2], [61]) == 0 and cache.get("k") == 1


def test_the_first_counter_over_its_limit_stops_the_count():
    cache = _memory()
    assert cache.count_in_order(["a", "b"], [0, 5], [61, 61]) == 1
    assert (cache.get("a"), cache.get("b")) == (1, None)  # "b" not counted, as the one-by-one checks do


def test_threads_counting_in_memory_lose_no_increment():
    cache = _memory()

    def work():
        for _ in range(500):
            cache.count_in_order(["x", "y"], [10**9, 10**9], [61, 61])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (cache.get("x"), cache.get("y")) == (2000, 2000)


def test_without_a_redis_the_cache_is_this_backend():
    code = "import django; django.setup(); from django.conf import settings; print(settings.CACHES['default'])"
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="config.settings", AVCROWD_DEV="1", CACHE_URL="")
    env.pop("CELERY_BROKER_URL", None)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert "'BACKEND': 'catalog.cache.LocMemCache'" in out.stdout
