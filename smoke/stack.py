"""The processes of the production smoke test, described once: the command each service runs and the variables
it gets. `make smoke` starts them from here; tests/foundation/test_compose.py checks that docker-compose.yml runs
the same commands with the same variables, so that the smoke test proves the stack that compose deploys.

Plain Python (no Django): the values come from the smoke test's `Ports`; compose's come from `.env`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# What compose runs and the smoke test runs too (the image's working directory is the repository root).
COMMANDS = {
    "init": ["python", "manage.py", "deploy_init"],
    "web": ["gunicorn", "--config", "config/gunicorn.py", "config.wsgi:application"],
    "worker": [
        "celery",
        "-A",
        "config",
        "worker",
        "-Q",
        "default",
        "--concurrency",
        "2",
        "-n",
        "worker@%h",
        "--loglevel",
        "INFO",
    ],
    "beat": ["celery", "-A", "config", "beat", "--loglevel", "INFO"],
}
# The healthcheck each service's container runs ("$HOSTNAME" as the shell expands it).
HEALTHCHECKS = {
    "web": ["python", "config/healthcheck.py", "web"],
    "worker": ["celery", "-A", "config", "inspect", "ping", "-d", "worker@$HOSTNAME", "--timeout", "10"],
    "beat": ["python", "config/healthcheck.py", "beat"],
}

# Variables the smoke test sets that compose does not, each for a reason of the test machine.
SMOKE_ONLY = {
    "AVCROWD_ENV_FILE": "empty: a developer's .env (make run) must not reach the production processes",
    "AVCROWD_VAR_DIR": "a temporary folder instead of the image's /app/var (beat schedule and heartbeat)",
    "STATIC_ROOT": "collectstatic writes into a temporary folder, as the image build writes /app/staticfiles",
    "GUNICORN_CERTFILE": "gunicorn serves TLS itself: it stands in for Caddy, which terminates TLS in compose",
    "GUNICORN_KEYFILE": "the key of that certificate",
    "AWS_CA_BUNDLE": "boto3 trusts the smoke test's own certificate authority (moto serves TLS)",
    "CELERY_VISIBILITY_TIMEOUT": "20 s instead of 40 min, so that the killed worker's task comes back in seconds",
    "CELERY_TASK_TIME_LIMIT": "15 s: the visibility timeout must stay above the longest task",
    "HOSTNAME": "the name the worker's healthcheck pings (docker sets it in a container)",
    "PATH": "the virtualenv's bin first (the image's Python has the packages in its own bin)",
    "HOME": "for the processes' caches",
    "LANG": "UTF-8 output",
    "HIT_SUBMIT_TO_SELF": "the HIT is handed back to this server's demo receiver instead of MTurk's worker site",
}

APP_VARIABLES = [
    "DEBUG",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS",
    "PUBLIC_BASE_URL",
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "CELERY_RESULT_BACKEND",
    "AWS_STORAGE_BUCKET_NAME",
    "AWS_S3_ENDPOINT_URL",
    "AWS_S3_PUBLIC_ENDPOINT_URL",
    "AWS_S3_REGION_NAME",
    "AWS_S3_ACCESS_KEY_ID",
    "AWS_S3_SECRET_ACCESS_KEY",
    "LOG_FORMAT",
    "METRICS_TOKEN",
    "SENTRY_DSN",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "PROLIFIC_API_TOKEN",
    "PROLIFIC_COMPLETION_CODE",
]
SERVICE_VARIABLES = {
    "init": [],
    "web": ["GUNICORN_BIND", "WEB_CONCURRENCY", "GUNICORN_THREADS", "PROMETHEUS_MULTIPROC_DIR"],
    "worker": [],
    "beat": [],
}


@dataclass
class Ports:
    """Where the smoke test's services listen and what they share."""

    web: int
    s3: int
    database_url: str
    redis_url: str
    secret_key: str
    metrics_token: str
    workdir: str  # a temporary folder for the run
    cert: str
    key: str
    ca: str
    bucket: str = "avcrowd-smoke"
    extra: dict = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.web}"


def app_environment(p: Ports, path: str, home: str, hostname: str) -> dict[str, str]:
    """The variables of every app service, as compose gives them (values for this machine)."""
    env = {
        "DEBUG": "0",
        "SECRET_KEY": p.secret_key,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "CSRF_TRUSTED_ORIGINS": p.base_url,
        "PUBLIC_BASE_URL": p.base_url,
        "DATABASE_URL": p.database_url,
        "CELERY_BROKER_URL": p.redis_url,
        "CELERY_RESULT_BACKEND": p.redis_url,
        "AWS_STORAGE_BUCKET_NAME": p.bucket,
        # the servers reach the store at 127.0.0.1, browsers at "localhost": two names, so the test can tell
        # which one a presigned URL was built for (compose: http://minio:9000 and https://MEDIA_DOMAIN)
        "AWS_S3_ENDPOINT_URL": f"https://127.0.0.1:{p.s3}",
        "AWS_S3_PUBLIC_ENDPOINT_URL": f"https://localhost:{p.s3}",
        "AWS_S3_REGION_NAME": "us-east-1",
        "AWS_S3_ACCESS_KEY_ID": "smoke-access-key",
        "AWS_S3_SECRET_ACCESS_KEY": "smoke-secret-key",
        "LOG_FORMAT": "json",
        "METRICS_TOKEN": p.metrics_token,
        "SENTRY_DSN": "",
        "AWS_ACCESS_KEY_ID": "",
        "AWS_SECRET_ACCESS_KEY": "",
        "PROLIFIC_API_TOKEN": "",
        "PROLIFIC_COMPLETION_CODE": "",
        # smoke-only (SMOKE_ONLY says why)
        "AVCROWD_ENV_FILE": "",
        "AVCROWD_VAR_DIR": f"{p.workdir}/var",
        "STATIC_ROOT": f"{p.workdir}/static",
        "GUNICORN_CERTFILE": p.cert,
        "GUNICORN_KEYFILE": p.key,
        "AWS_CA_BUNDLE": p.ca,
        "CELERY_VISIBILITY_TIMEOUT": "20",
        "CELERY_TASK_TIME_LIMIT": "15",
        "HOSTNAME": hostname,
        "PATH": path,
        "HOME": home,
        "LANG": "C.UTF-8",
        "HIT_SUBMIT_TO_SELF": "1",
    }
    assert set(env) == set(APP_VARIABLES) | set(SMOKE_ONLY), "APP_VARIABLES / SMOKE_ONLY out of step"
    return env


def service_environment(service: str, p: Ports, **kw) -> dict[str, str]:
    env = app_environment(p, **kw)
    if service == "web":
        env.update(
            GUNICORN_BIND=f"127.0.0.1:{p.web}",
            WEB_CONCURRENCY="2",
            GUNICORN_THREADS="16",
            PROMETHEUS_MULTIPROC_DIR=f"{p.workdir}/prometheus",
        )
    assert set(env) == set(APP_VARIABLES) | set(SERVICE_VARIABLES[service]) | set(SMOKE_ONLY)
    return env
