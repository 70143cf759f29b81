"""The production cache (catalog.cache.RedisCache on a real Redis): Django's cache API unchanged, one Redis client
built per server rather than one per call, safe to share between a gunicorn worker's threads."""

import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
import redis

from catalog.cache import RedisCache

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
