"""Container healthchecks (standard library only: no Django start-up every few seconds).

    python config/healthcheck.py web     GET /healthz from the gunicorn of this container (GUNICORN_BIND), with
                                         a Host of ALLOWED_HOSTS and X-Forwarded-Proto: https, as Caddy sends it
    python config/healthcheck.py beat    Celery beat ticked within the last 90 s (it touches var/beat-heartbeat)

The worker's healthcheck is Celery's own: `celery -A config inspect ping -d worker@$HOSTNAME` (docker-compose.yml).
Exit status 0 = healthy; otherwise one line on stderr says what is wrong.
"""

from __future__ import annotations

import http.client
import os
import ssl
import sys
import time
from pathlib import Path

BEAT_MAX_AGE = 90  # seconds: three times CELERY_BEAT_MAX_LOOP_INTERVAL


def check_web(path: str = "/healthz") -> str:
    bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
    port = int(bind.rsplit(":", 1)[1])
    hosts = [h.strip().lstrip(".") for h in os.environ.get("ALLOWED_HOSTS", "").split(",") if h.strip()]
    host = next((h for h in hosts if h != "*"), "localhost")
    if os.environ.get("GUNICORN_CERTFILE"):  # gunicorn serving TLS itself (the smoke test's stand-in for Caddy)
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=ssl._create_unverified_context())
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", path, headers={"Host": host, "X-Forwarded-Proto": "https"})
    response = conn.getresponse()
    body = response.read(200).decode(errors="replace")
    if response.status != 200:
        raise RuntimeError(f"GET {path} answered {response.status}: {body}")
    return f"GET {path}: {response.status} {body}"


def check_beat() -> str:
    var_dir = Path(os.environ.get("AVCROWD_VAR_DIR") or Path(__file__).resolve().parent.parent / "var")
    beat_file = var_dir / "beat-heartbeat"
    try:
        age = time.time() - beat_file.stat().st_mtime
    except FileNotFoundError:
        raise RuntimeError(f"{beat_file} does not exist: beat has not ticked yet")
    if age > BEAT_MAX_AGE:
        raise RuntimeError(f"beat last ticked {age:.0f} s ago (more than {BEAT_MAX_AGE} s)")
    return f"beat ticked {age:.0f} s ago"


def main(argv: list[str]) -> int:
    checks = {"web": check_web, "beat": check_beat}
    if len(argv) < 2 or argv[1] not in checks:
        print(f"usage: python config/healthcheck.py {{{'|'.join(checks)}}}", file=sys.stderr)
        return 2
    try:
        print(checks[argv[1]](*argv[2:]))
    except Exception as exc:  # noqa: BLE001 - any failure is "unhealthy", with its reason
        print(f"unhealthy: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
