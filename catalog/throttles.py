"""Rate limits on the shared cache (Redis in production, so every gunicorn worker counts together).

DRF's SimpleRateThrottle parses the rates and holds the cache; the counting is a fixed window per key (one atomic
counter); the rates are read from settings at call time (`HIT_THROTTLE_RATES`), so a deployment or a test can
change them. `throttle_check` raises
TooManyRequests naming the limit, which the error mapping turns into 429 with Retry-After.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.core.cache.backends.redis import RedisCache
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from catalog.errors import TooManyRequests


def client_ip(request) -> str:
    """The client's address, by DRF's rule (`BaseThrottle.get_ident`, REST_FRAMEWORK NUM_PROXIES): behind N proxies
    the N-th X-Forwarded-For entry from the right (the one our proxy added), with no proxy the connection's address;
    NUM_PROXIES None trusts the whole header. Read from `META` (DRF's reads `request.headers`, which parses every
    header of the request: a tenth of an autosave's request handling)."""
    meta = request.META
    forwarded = meta.get("HTTP_X_FORWARDED_FOR")
    proxies = api_settings.NUM_PROXIES
    if proxies is None:
        ident = "".join(forwarded.split()) if forwarded else meta.get("REMOTE_ADDR")
    elif proxies == 0 or forwarded is None:
        ident = meta.get("REMOTE_ADDR")
    else:
        entries = forwarded.split(",")
        ident = entries[-min(proxies, len(entries))].strip()
    return ident or "unknown"


def client_hash(request) -> str:
    """A keyed hash of the client's address: enough to count what one address started, without storing it."""
    key = settings.SECRET_KEY.encode()
    return hmac.new(key, b"client:" + client_ip(request).encode(), hashlib.sha256).hexdigest()


class _KeyedThrottle(SimpleRateThrottle):
    """DRF's rate syntax and cache, counted in fixed windows: one atomic `incr` of one small counter per request
    (DRF's own sliding window keeps, reads and writes back a list of every request time in the window, which on
    Redis grows to milliseconds per request at thousands a minute: bench/bench_throttle.py)."""

    def __init__(self, scope: str, ident: str):
        # SimpleRateThrottle.__init__, with the rate parsed once per rate string (two checks on every autosave)
        self.scope = scope
        self.ident = ident
        self.rate = self.get_rate()
        self.num_requests, self.duration = _parse_rate(self.rate)

    def get_rate(self):
        return settings.HIT_THROTTLE_RATES[self.scope]

    def get_cache_key(self, request, view):
        return _counter_key(self.cache_format, self.scope, self.ident)

    def window_key(self, request) -> str:
        """The counter of the current fixed window (its number in the key); sets when the window ends."""
        now = self.timer()
        self.window_ends = _window_end(now, self.duration)
        return _window_key(self.cache_format, self.scope, self.ident, now, self.duration)

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        key = self.window_key(request)
        try:
            count = self.cache.incr(key)
        except ValueError:  # the window's first request (or a race with another one: add() decides)
            if self.cache.add(key, 1, timeout=self.duration + 1):
                return True
            count = self.cache.incr(key)
        return count <= self.num_requests

    def wait(self):
        return max(0.0, self.window_ends - self.timer())


_parse_rate = lru_cache(maxsize=64)(SimpleRateThrottle.__new__(SimpleRateThrottle).parse_rate)


@lru_cache(maxsize=8192)  # an annotator's saves hit the same two counters, hundreds of times an hour
def _counter_key(cache_format: str, scope: str, ident: str) -> str:
    """The counter's key: the scope and a hash of the identity (no address or worker id stored in the cache). Only
    letters, digits, "_" and ":", well under 250 characters: a valid key for every Django cache backend."""
    return cache_format % {"scope": scope, "ident": hashlib.sha256(ident.encode()).hexdigest()[:32]}


def _window_key(cache_format: str, scope: str, ident: str, now: float, duration: int) -> str:
    """The counter of the fixed window of `duration` seconds that holds the time `now`: its number in the key."""
    return f"{_counter_key(cache_format, scope, ident)}:{int(now // duration)}"


def _window_end(now: float, duration: int) -> int:
    """When the fixed window of `duration` seconds that holds the time `now` ends."""
    return (int(now // duration) + 1) * duration


# Counts the keys in order, one round trip for all: INCR, EXPIRE on a window's first request, and stops at the first
# key over its limit (the later keys are not counted, as when the checks run one after another). Returns 0 when every
# key is within its limit, else the 1-based position of the first one over it.
_COUNT_IN_ORDER = """
for i, key in ipairs(KEYS) do
  local n = redis.call('INCR', key)
  if n == 1 then redis.call('EXPIRE', key, ARGV[2 * i]) end
  if n > tonumber(ARGV[2 * i - 1]) then return i end
end
return 0
"""
_scripts: dict = {}


def _redis_count(backend, keys: list[str], limits: list[int], timeouts: list[int]) -> int | None:
    """The counters counted in one round trip on Django's Redis cache (EVALSHA of `_COUNT_IN_ORDER`; the two checks
    of an autosave were four round trips: `RedisCache.incr` is EXISTS + INCRBY); None for other caches."""
    if not isinstance(backend, RedisCache):
        return None
    client = backend._cache.get_client(write=True)  # Django's own client: the connection pool it keeps
    script = _scripts.get("count")
    if script is None:  # the script's SHA, computed once; each call runs it on the client given (EVALSHA, else EVAL)
        script = _scripts["count"] = client.register_script(_COUNT_IN_ORDER)
    argv = []
    for limit, timeout in zip(limits, timeouts, strict=True):
        argv += [limit, timeout]
    # make_key, not make_and_validate_key: `_counter_key` builds only valid keys (validation scans every character)
    return int(script(keys=[backend.make_key(k) for k in keys], args=argv, client=client))


def throttle_checks(request, checks) -> None:
    """Count this request for each (scope, ident, what), in order; at the first over its limit: TooManyRequests
    naming `what` and the rate (the checks after it are not counted). On Redis all in one round trip, in process
    memory under one lock (catalog.cache.LocMemCache); on another cache one `_KeyedThrottle` after another.

    The windows and keys are `_KeyedThrottle`'s (its timer, `_window_key`), computed here without building a
    throttle per check: the rates read once, the clock read once (an autosave's two checks; bench/profile_saves.py)."""
    rates = settings.HIT_THROTTLE_RATES
    now = _KeyedThrottle.timer()
    keys, limits, timeouts, limited = [], [], [], []
    for scope, ident, what in checks:
        rate = rates[scope]
        if rate is None:
            continue
        num_requests, duration = _parse_rate(rate)
        keys.append(_window_key(_KeyedThrottle.cache_format, scope, ident, now, duration))
        limits.append(num_requests)
        timeouts.append(duration + 1)
        limited.append((scope, ident, what, rate, duration))
    if not limited:
        return
    backend = caches[DEFAULT_CACHE_ALIAS]  # the throttles' cache
    over = _redis_count(backend, keys, limits, timeouts)
    if over is None and hasattr(backend, "count_in_order"):  # catalog.cache.LocMemCache: process memory
        over = backend.count_in_order(keys, limits, timeouts)
    if over is None:  # another cache: one check after another
        throttles = [_KeyedThrottle(scope, ident) for scope, ident, *_ in limited]
        over = next((i + 1 for i, t in enumerate(throttles) if not t.allow_request(request, None)), 0)
    if over:
        _, _, what, rate, duration = limited[over - 1]
        wait = max(0.0, _window_end(now, duration) - now) or 1  # as _KeyedThrottle.wait
        raise TooManyRequests(
            f"too many requests {what} (limit {rate}); wait {int(wait) + 1} s and try again",
            retry_after=int(wait) + 1,
            field="rate",
        )


def throttle_check(request, scope: str, ident: str, what: str) -> None:
    """Count this request for (scope, ident); over the limit: TooManyRequests naming `what` and the rate."""
    throttle_checks(request, [(scope, ident, what)])
