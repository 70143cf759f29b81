"""Django's Redis cache, with one Redis client kept per server instead of one built on every call.

Django's `RedisCacheClient.get_client` builds a new `redis.Redis` for every cache operation (sharing the connection
pool). redis-py's constructor builds its table of response callbacks each time (about 170 entries): ~50 µs of CPU
per cache call, a fifth of what a whole autosave costs the database (docs/benchmarks.md, "Autosave overhead").
A `redis.Redis` is safe to share between threads (each command takes a connection from the pool), so this backend
keeps the one it builds for each server. Everything else — pools, serializer, keys, timeouts, the choice of
server — is Django's own: set `CACHES["default"]["BACKEND"] = "catalog.cache.RedisCache"` (config.settings does
when CACHE_URL names a Redis).
"""

from __future__ import annotations

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
