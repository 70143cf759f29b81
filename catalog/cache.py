"""The cache backends: Django's Redis cache, with one Redis client kept per server instead of one built on every
call; Django's process-memory cache, able to count the rate limits' counters in one step.

Django's `RedisCacheClient.get_client` builds a new `redis.Redis` for every cache operation (sharing the connection
pool). redis-py's constructor builds its table of response callbacks each time (about 170 entries): ~50 µs of CPU
per cache call, a fifth of what a whole autosave costs the database (docs/benchmarks.md, "Autosave overhead").
A `redis.Redis` is safe to share between threads (each command takes a connection from the pool), so this backend
keeps the one it builds for each server. Everything else — pools, serializer, keys, timeouts, the choice of
server — is Django's own: set `CACHES["default"]["BACKEND"] = "catalog.cache.RedisCache"` (config.settings does
when CACHE_URL names a Redis).

`LocMemCache` (the default without CACHE_URL: development, the embedded set-up, tests) is Django's, plus
`count_in_order`: the rate limits' counters of one request counted under one lock, as one Redis script counts them
(catalog.throttles). Through Django's API that was an `incr` (and on a window's first request an `add`) per counter,
each validating its key character by character and taking the lock.
"""

from __future__ import annotations

import pickle

from django.core.cache.backends import locmem
from django.core.cache.backends import redis as django_redis


class RedisCacheClient(django_redis.RedisCacheClient):
    def __init__(self, servers, **options):
        super().__init__(servers, **options)
        self._clients: dict = {}  # connection pool -> the client built on it

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)  # Django's choice of server and its pool
        client = self._clients.get(pool)
        if client is None:
            client = self._clients[pool] = self._client(connection_pool=pool)
        return client


class RedisCache(django_redis.RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = RedisCacheClient


class LocMemCache(locmem.LocMemCache):
    def count_in_order(self, keys, limits, timeouts) -> int:
        """Add 1 to each counter in turn (a missing or expired one starts at 1 and lives `timeouts[i]` seconds, as
        `add`), stopping at the first whose count exceeds its limit. Returns its 1-based position, or 0 when every
        counter is within its limit. The values are what `incr` stores: `get` reads them, `clear` resets them.
        The keys must be valid cache keys (not checked: catalog.throttles builds them from letters, digits, ":" and
        "_")."""
        with self._lock:
            for position, (key, limit, timeout) in enumerate(zip(keys, limits, timeouts, strict=True), 1):
                key = self.make_key(key)
                if self._has_expired(key):  # missing, or expired: a new window
                    count = 1
                    self._set(key, pickle.dumps(count, self.pickle_protocol), timeout)
                else:
                    count = pickle.loads(self._cache[key]) + 1
                    self._cache[key] = pickle.dumps(count, self.pickle_protocol)
                    self._cache.move_to_end(key, last=False)
                if count > limit:
                    return position
        return 0
