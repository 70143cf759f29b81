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
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

from catalog.errors import TooManyRequests


def client_ip(request) -> str:
    """The client's address: the X-Forwarded-For entry added by our proxy (REST_FRAMEWORK NUM_PROXIES), else
    the connection's address."""
    return BaseThrottle().get_ident(request) or "unknown"


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
        digest = hashlib.sha256(self.ident.encode()).hexdigest()[:32]
        return self.cache_format % {"scope": self.scope, "ident": digest}

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        now = self.timer()
        window = int(now // self.duration)
        key = f"{self.get_cache_key(request, view)}:{window}"
        self.window_ends = (window + 1) * self.duration
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


def throttle_check(request, scope: str, ident: str, what: str) -> None:
    """Count this request for (scope, ident); over the limit: TooManyRequests naming `what` and the rate."""
    throttle = _KeyedThrottle(scope, ident)
    if not throttle.allow_request(request, None):
        wait = throttle.wait() or 1
        raise TooManyRequests(
            f"too many requests {what} (limit {throttle.rate}); wait {int(wait) + 1} s and try again",
            retry_after=int(wait) + 1,
            field="rate",
        )
