"""`make smoke`: the production smoke test (smoke/test_production.py) on this machine, in a few minutes.

DEBUG=0 and the production settings; gunicorn (TLS, WhiteNoise), a Celery worker and beat on PostgreSQL and Redis,
and moto's S3 server, started with the commands and variables of docker-compose.yml (smoke/stack.py); then headless
Chromium drives an admin and a crowd worker through the pipeline, and the worker is killed mid-task. Docker itself
is not needed (and not available on the CI machine).

Environment: SMOKE_DATABASE_ADMIN_URL (else DATABASE_URL, else postgres@127.0.0.1:5432) names the PostgreSQL server,
where the database <name>_smoke is created and dropped; SMOKE_REDIS_URL (default redis://127.0.0.1:6379/14) is a
Redis database of its own (emptied first); SMOKE_KEEP_LOGS=DIR keeps the services' logs.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    started = time.time()
    cmd = [sys.executable, "-m", "pytest", "-c", "smoke/pytest.ini", "--rootdir", ".", "smoke", *sys.argv[1:]]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    rc = subprocess.call(cmd, cwd=ROOT, env=env)
    print(f"smoke: {'passed' if rc == 0 else 'FAILED'} in {time.time() - started:.0f} s")
    return rc


if __name__ == "__main__":
    sys.exit(main())
