"""Retrying marketplace calls with exponential backoff and full jitter, logging every attempt."""

from __future__ import annotations

import json
import random
import re
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable

from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError, ReadTimeoutError

from crowd.models import MarketplaceCall

from . import MarketplaceError

RATE_RE = re.compile(r"\brate\b|throttl|too many requests", re.IGNORECASE)
RETRYABLE_CODES = {
    "ThrottlingException",
    "ServiceUnavailable",
    "ServiceFault",
    "InternalError",
    "RequestLimitExceeded",
    "TooManyRequestsException",
}
SECRET_KEYS = {"token", "authorization", "aws_secret_access_key"}


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code", "") or "ClientError"
    return getattr(exc, "code", "") or type(exc).__name__


def error_message(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Message", "") or str(exc)
    return getattr(exc, "message", "") or str(exc)


def is_retryable(exc: BaseException) -> bool:
    """Throttling and transient faults: worth another try after a pause (not MTurk's "already processed": the
    same token gets the same answer)."""
    if is_duplicate_token(exc):
        return False
    if isinstance(
        exc, (EndpointConnectionError, ConnectionClosedError, ReadTimeoutError, ConnectionError, TimeoutError)
    ):
        return True
    if getattr(exc, "retryable", False):
        return True
    code = error_code(exc)
    if code in RETRYABLE_CODES:
        return True
    if code == "RequestError" and RATE_RE.search(error_message(exc)):
        return True
    status = getattr(exc, "status", None)
    return status in (429, 500, 502, 503, 504)


def is_duplicate_token(exc: BaseException) -> bool:
    """MTurk's answer to a UniqueRequestToken it has already processed (the earlier call succeeded): a
    RequestError, or a ServiceFault, whose message names the idempotency token."""
    msg = error_message(exc).lower()
    return error_code(exc) in ("RequestError", "ServiceFault") and (
        "idempotency token" in msg or "already been processed" in msg or "duplicate" in msg
    )


def _jsonable(value: Any) -> Any:
    try:
        return json.loads(json.dumps(value, default=_default))
    except (TypeError, ValueError):
        return str(value)


def _default(o):
    if isinstance(o, Decimal):
        return str(o)
    if hasattr(o, "isoformat"):
        return o.isoformat()
    return str(o)


def _redact(params: dict) -> dict:
    out = {}
    for k, v in (params or {}).items():
        if k.lower() in SECRET_KEYS:
            out[k] = "***"
        elif isinstance(v, str) and len(v) > 70000:
            out[k] = v[:70000] + f"... ({len(v)} chars)"
        else:
            out[k] = v
    return _jsonable(out)


@dataclass
class RetryPolicy:
    max_attempts: int = 6
    base_seconds: float = 0.5
    cap_seconds: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**(attempt-1))]."""
        return self.rng.uniform(0, min(self.cap_seconds, self.base_seconds * 2 ** (attempt - 1)))


def call_logged(
    fn: Callable[..., Any],
    params: dict,
    *,
    backend: str,
    operation: str,
    sandbox: bool,
    hit=None,
    policy: RetryPolicy | None = None,
    summarize: Callable[[Any], Any] | None = None,
    retry_if: Callable[[BaseException], bool] | None = None,
):
    """Call fn(**params), retrying transient failures (`retry_if`, default `is_retryable`; a call that is not
    idempotent narrows it); write one MarketplaceCall row per attempt.

    Raises the last exception when it is not retryable or attempts are exhausted.
    """
    retry_if = retry_if or is_retryable
    policy = policy or RetryPolicy()
    attempt = 0
    while True:
        attempt += 1
        t0 = time.perf_counter()
        try:
            result = fn(**params)
        except Exception as exc:  # noqa: BLE001 - logged, then retried or re-raised
            MarketplaceCall.objects.create(
                backend=backend,
                operation=operation,
                sandbox=sandbox,
                hit=hit,
                request=_redact(params),
                ok=False,
                error_code=error_code(exc)[:100],
                error_message=error_message(exc)[:2000],
                attempt=attempt,
                duration_ms=(time.perf_counter() - t0) * 1000,
            )
            if attempt < policy.max_attempts and retry_if(exc):
                policy.sleep(policy.delay(attempt))
                continue
            raise
        response = summarize(result) if summarize else result
        if isinstance(response, dict):
            response = {k: v for k, v in response.items() if k != "ResponseMetadata"}
        MarketplaceCall.objects.create(
            backend=backend,
            operation=operation,
            sandbox=sandbox,
            hit=hit,
            request=_redact(params),
            response=_jsonable(response) if isinstance(response, (dict, list)) else {"value": _jsonable(response)},
            ok=True,
            attempt=attempt,
            duration_ms=(time.perf_counter() - t0) * 1000,
        )
        return result


def as_marketplace_error(exc: BaseException, what: str) -> MarketplaceError:
    return MarketplaceError(f"{what}: {error_code(exc)}: {error_message(exc)}", code=error_code(exc))
