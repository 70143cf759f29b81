"""avcrowd settings: everything that differs between a laptop and production comes from the environment.

Defaults give the embedded set-up: SQLite under var/, Celery tasks run in-process, media under var/media.
See README.md ("Configuration") for every variable.
"""

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from .env import database_from_env, env_bool, env_int, env_list, env_seconds, load_env_file

BASE_DIR = Path(__file__).resolve().parent.parent
# Local settings of this checkout: `make run` writes .env with development settings, so that every
# `python manage.py ...` of the README works in a new shell. Variables set in the environment win; an empty
# AVCROWD_ENV_FILE skips the file (the test suite and the production smoke test do).
load_env_file(os.environ.get("AVCROWD_ENV_FILE", str(BASE_DIR / ".env")))
VAR_DIR = Path(os.environ.get("AVCROWD_VAR_DIR", BASE_DIR / "var"))

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if DEBUG or os.environ.get("AVCROWD_DEV") == "1":
        SECRET_KEY = "dev-insecure-key-change-me-" + "x" * 30
    else:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set SECRET_KEY (50+ random characters) for production, "
            "or DEBUG=1 / AVCROWD_DEV=1 for a local development server."
        )

# a development environment: DEBUG, or AVCROWD_DEV=1 (the Makefile's management commands, the test suite)
DEVELOPMENT = DEBUG or os.environ.get("AVCROWD_DEV") == "1"
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# Public HTTPS base URL of this server, used in ExternalQuestion URLs and media links.
PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc served from our static files, not a CDN
    "annotation",  # historical migrations only: the tables the apps below took over (docs/architecture.md)
    "catalog",
    "proposals",
    "crowd",
    "labels",
    "reports",
    "frontend",
]

MIDDLEWARE = [
    "catalog.observability.RequestMiddleware",  # request id for the logs, request latency for /metrics
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # static files from STATIC_ROOT (compressed, hashed names)
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "frontend.middleware.AvcrowdErrorMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "frontend.middleware.FrameAncestorsMiddleware",
]
# The HIT page's autosave (PUT /api/hit/assignments/<uuid>/answers/<video id>) runs MIDDLEWARE without these
# (config/handlers.py): it is authenticated by its HIT token and browser binding, csrf-exempt, reads no session,
# user or message, and is never a static file. Everything else in MIDDLEWARE applies to it.
AUTOSAVE_SKIPPED_MIDDLEWARE = [
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "frontend.context_processors.roles",
            ],
        },
    },
]

VAR_DIR.mkdir(parents=True, exist_ok=True)
DATABASES = {"default": database_from_env(VAR_DIR / "avcrowd.sqlite3")}
# PostgreSQL: a kept connection is checked before a request's first query by looking at its socket (has the server
# closed it?), and with Django's `SELECT 1` when the last one is this old (config/db/postgresql/base.py); 0: with
# `SELECT 1` every time, as Django does
DATABASE_HEALTH_CHECK_SECONDS = env_seconds("DATABASE_HEALTH_CHECK_SECONDS", 10.0, 0.0, 3600.0)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))

# --- media: local disk by default, S3 (django-storages) when a bucket is named -------------------
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
AWS_STORAGE_BUCKET_NAME = os.environ.get("AWS_STORAGE_BUCKET_NAME", "")
# The address the servers reach the store at, the address browsers reach it at (presigned URLs are signed for
# it), the region, and the media store's own keys (so that MTurk keeps the standard AWS credential chain).
AWS_S3_ENDPOINT_URL = os.environ.get("AWS_S3_ENDPOINT_URL", "")
AWS_S3_PUBLIC_ENDPOINT_URL = os.environ.get("AWS_S3_PUBLIC_ENDPOINT_URL", "").rstrip("/")
AWS_S3_REGION_NAME = os.environ.get("AWS_S3_REGION_NAME", "")
AWS_S3_ACCESS_KEY_ID = os.environ.get("AWS_S3_ACCESS_KEY_ID", "")
AWS_S3_SECRET_ACCESS_KEY = os.environ.get("AWS_S3_SECRET_ACCESS_KEY", "")
AWS_QUERYSTRING_EXPIRE = env_int("AWS_QUERYSTRING_EXPIRE", 21600, 60, 7 * 24 * 3600)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # hashed, compressed copies made by collectstatic (at image build), served by WhiteNoise; DEBUG serves the
    # source files as they are
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "config.staticfiles.StaticStorage"
    },
}
if AWS_STORAGE_BUCKET_NAME:
    STORAGES["default"] = {
        "BACKEND": "catalog.storage.MediaStorage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "endpoint_url": AWS_S3_ENDPOINT_URL or None,
            "region_name": AWS_S3_REGION_NAME or None,
            "addressing_style": "path" if AWS_S3_ENDPOINT_URL else None,
            "signature_version": "s3v4",
            "querystring_auth": True,
            "querystring_expire": AWS_QUERYSTRING_EXPIRE,
            "file_overwrite": False,
            "access_key": AWS_S3_ACCESS_KEY_ID or None,
            "secret_key": AWS_S3_SECRET_ACCESS_KEY or None,
        },
    }
# Local directories from which clips may be referenced by path (import_clips on a directory / CSV with paths).
MEDIA_IMPORT_ROOTS = env_list("MEDIA_IMPORT_ROOTS", [])

# --- Celery: no broker -> tasks run eagerly in-process -------------------------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND", CELERY_BROKER_URL or None)
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
# A task is acknowledged when it has finished, and a task whose worker died (a killed pool process, an
# out-of-memory kill) goes back to the queue instead of being lost: every task is idempotent.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# No task may run longer than CELERY_TASK_TIME_LIMIT (the soft limit comes a minute earlier). A task taken by a
# worker that died as a whole (kill -9, a lost host) is handed to another worker once CELERY_VISIBILITY_TIMEOUT
# has passed without an acknowledgement, so the visibility timeout must be longer than the longest task, or a
# task still running would be delivered a second time. docs/operations.md lists the longest tasks.
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 1800, 10, 24 * 3600)
CELERY_TASK_SOFT_TIME_LIMIT = max(CELERY_TASK_TIME_LIMIT - 60, int(CELERY_TASK_TIME_LIMIT * 0.9))
CELERY_VISIBILITY_TIMEOUT = env_int("CELERY_VISIBILITY_TIMEOUT", 2400, 15, 7 * 24 * 3600)
if CELERY_VISIBILITY_TIMEOUT <= CELERY_TASK_TIME_LIMIT:
    raise ImproperlyConfigured(
        f"CELERY_VISIBILITY_TIMEOUT={CELERY_VISIBILITY_TIMEOUT} must be longer than CELERY_TASK_TIME_LIMIT="
        f"{CELERY_TASK_TIME_LIMIT}, or a task still running is delivered to a second worker"
    )
# An unreachable broker is reported within seconds (the request that starts long work fails its Operation with
# the reason) instead of hanging on connection retries.
CELERY_BROKER_CONNECTION_TIMEOUT = env_seconds("CELERY_BROKER_CONNECTION_TIMEOUT", 3.0, 0.5, 60.0)
_redis_timeouts = {"socket_connect_timeout": CELERY_BROKER_CONNECTION_TIMEOUT, "socket_timeout": 5.0}
# Every worker looks for such orphaned tasks every 10 s (kombu's default, a sweep every 100 s, is throttled down)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
    "unacked_restore_interval": 10,
    "unacked_restore_throttle": 1,
    **_redis_timeouts,
}
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 0}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"retry_policy": {"max_retries": 0}}
CELERY_REDIS_SOCKET_CONNECT_TIMEOUT = _redis_timeouts["socket_connect_timeout"]
CELERY_REDIS_SOCKET_TIMEOUT = _redis_timeouts["socket_timeout"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False  # acks_late: the broker redelivers them
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # the LOGGING below (plain or JSON lines) also in workers
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {"proposals.tasks.*": {"queue": "gpu"}}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# beat touches this file on every tick (at least every CELERY_BEAT_MAX_LOOP_INTERVAL seconds): its healthcheck
CELERY_BEAT_SCHEDULER = "config.celery.HeartbeatScheduler"
CELERY_BEAT_HEARTBEAT_FILE = str(VAR_DIR / "beat-heartbeat")
CELERY_BEAT_MAX_LOOP_INTERVAL = 30
CELERY_BEAT_SCHEDULE = {
    "approve-after-review-window": {"task": "crowd.tasks.assignments_approve_due_task", "schedule": 3600.0},
    "marketplace-sync": {
        "task": "crowd.tasks.marketplace_sync_task",
        "schedule": float(os.environ.get("MARKETPLACE_SYNC_SECONDS", "300")),
    },
    "operations-fail-stale": {"task": "catalog.tasks.operations_fail_stale_task", "schedule": 60.0},
    "assignments-expire": {"task": "crowd.tasks.assignments_expire_task", "schedule": 60.0},
}
# Long work (Operation rows): a running one writes a heartbeat every OPERATION_HEARTBEAT_SECONDS; one without a
# heartbeat for OPERATION_STALE_SECONDS (its worker or command died) is failed and can be retried; one that no
# worker picked up within OPERATION_QUEUED_SECONDS too.
OPERATION_HEARTBEAT_SECONDS = env_seconds("OPERATION_HEARTBEAT_SECONDS", 30.0, 1.0, 600.0)
OPERATION_STALE_SECONDS = env_seconds("OPERATION_STALE_SECONDS", 300.0, 3.0, 24 * 3600.0)
OPERATION_QUEUED_SECONDS = env_seconds("OPERATION_QUEUED_SECONDS", 3600.0, 3.0, 7 * 24 * 3600.0)
if OPERATION_STALE_SECONDS < 2 * OPERATION_HEARTBEAT_SECONDS:
    raise ImproperlyConfigured(
        f"OPERATION_STALE_SECONDS={OPERATION_STALE_SECONDS:g} must be at least twice OPERATION_HEARTBEAT_SECONDS="
        f"{OPERATION_HEARTBEAT_SECONDS:g}, or live work is reported dead"
    )

# --- REST API ------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # every API view names its rule (catalog.access); one that does not is closed to everyone
    "DEFAULT_PERMISSION_CLASSES": ["catalog.access.Undeclared"],
    "EXCEPTION_HANDLER": "catalog.http.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
    # the client address of throttles: the last X-Forwarded-For entry, the one Caddy added (production), or the
    # connection's address (development: no proxy)
    "NUM_PROXIES": env_int("NUM_PROXIES", 0 if DEBUG else 1, 0, 10),
}
SPECTACULAR_SETTINGS = {
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "TITLE": "avcrowd API",
    "DESCRIPTION": "Clips, batches, annotations, releases and metric reports.",
    "VERSION": "1.0.0",
    "SERVE_PERMISSIONS": ["catalog.access.Public"],
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "proposals.models.ModelRun.STATUSES",
        "ReleaseMethodEnum": "labels.models.Release.METHODS",
        "MergeMethodEnum": "labels.core.merge.METHODS",
    },
}

# --- HIT page framing: MTurk worker sites plus a configurable list -------------------------------
MTURK_FRAME_ORIGINS = [
    "https://worker.mturk.com",
    "https://workersandbox.mturk.com",
    "https://www.mturk.com",
]
FRAME_ANCESTORS_EXTRA = env_list("FRAME_ANCESTORS", [])
X_FRAME_OPTIONS = "DENY"

# Prolific: the completion code of studies (one for all, or per dataset name), and expert majority for gold.
PROLIFIC_COMPLETION_CODE = os.environ.get("PROLIFIC_COMPLETION_CODE", "")
GOLD_MIN_EXPERTS = int(os.environ.get("GOLD_MIN_EXPERTS", "3"))
# the HIT page offers "it does not play: skip" when a clip has shown no picture after this long
HIT_MEDIA_TIMEOUT_SECONDS = env_seconds("HIT_MEDIA_TIMEOUT_SECONDS", 20.0, 1.0, 600.0)

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"

# --- production hardening (on unless DEBUG) ------------------------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
# Lax: a request from another site carries no session (a cross-site GET of the HIT session endpoint cannot bind a
# signed-in annotator). The HIT page inside MTurk's frame needs no session: it has its own token and browser secret.
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
# Content-Security-Policy of every response: frontend.middleware.content_security_policy (script-src 'self').

# --- trust: the HIT API, sign-in (docs/operations.md, "Security") ------------------------------------------------
# The shared cache holds the throttles' counters: Redis in production (every gunicorn worker sees the same counts),
# this process's memory when no Redis is named (development, tests).
CACHE_URL = os.environ.get("CACHE_URL", CELERY_BROKER_URL if CELERY_BROKER_URL.startswith("redis") else "")
CACHES = {
    # Django's Redis cache with one client kept per server; its memory cache counting the rate limits in one step
    # (catalog/cache.py)
    "default": {"BACKEND": "catalog.cache.RedisCache", "LOCATION": CACHE_URL, "KEY_PREFIX": "avc"}
    if CACHE_URL
    else {"BACKEND": "catalog.cache.LocMemCache", "LOCATION": "avcrowd"}
}
# MTurk hands the worker back to turkSubmitTo: only its own worker sites are accepted (plus any named here).
MTURK_SUBMIT_ORIGINS = ["https://www.mturk.com", "https://workersandbox.mturk.com"] + env_list(
    "MTURK_SUBMIT_EXTRA_ORIGINS", []
)
# The demo's hand-off to this server's own stand-in receiver (/demo/mturk/externalSubmit): development only.
HIT_SUBMIT_TO_SELF = env_bool("HIT_SUBMIT_TO_SELF", DEBUG)
# An in-progress assignment expires (its slot goes back to the batch) after its HIT's assignment duration, or
# this long when the batch has no HIT (in-house, Prolific, demo).
HIT_ASSIGNMENT_SECONDS = env_int("HIT_ASSIGNMENT_SECONDS", 3600, 60, 30 * 24 * 3600)
# At most this many in-progress assignments started from one address (slot squatting with invented ids).
HIT_MAX_OPEN_PER_CLIENT = env_int("HIT_MAX_OPEN_PER_CLIENT", 5, 1, 10000)
# Rate limits of the public HIT API (DRF's "N/second|minute|hour|day"), per client address and per worker id or
# assignment; a request over a limit gets 429 with Retry-After (the HIT page waits and retries).
HIT_THROTTLE_RATES = {
    "hit_session_ip": os.environ.get("HIT_THROTTLE_SESSION_IP", "120/minute"),
    "hit_session_worker": os.environ.get("HIT_THROTTLE_SESSION_WORKER", "30/minute"),
    "hit_write_ip": os.environ.get("HIT_THROTTLE_WRITE_IP", "6000/minute"),  # a lab behind one NAT address
    "hit_write_assignment": os.environ.get("HIT_THROTTLE_WRITE_ASSIGNMENT", "300/minute"),
}
# Sign-in: after LOGIN_FAILURE_LIMIT wrong passwords for one account name or from one address within
# LOGIN_FAILURE_WINDOW seconds, sign-in is refused (even with the right password) until the window has passed.
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, 1, 1000)
LOGIN_FAILURE_LIMIT_PER_ADDRESS = env_int("LOGIN_FAILURE_LIMIT_PER_ADDRESS", 20, 1, 10000)
LOGIN_FAILURE_WINDOW = env_int("LOGIN_FAILURE_WINDOW", 900, 10, 7 * 24 * 3600)

# --- observability ---------------------------------------------------------------------------------
# LOG_FORMAT=json: one JSON object per line (time, level, logger, message, request_id, exception); each line is
# written once (Django's own console handler is dropped; everything goes through the root logger).
LOG_FORMAT = os.environ.get("LOG_FORMAT", "plain").strip().lower()
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r} is not allowed; allowed: plain, json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "catalog.observability.RequestIdFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"},
        "json": {"()": "catalog.observability.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.server": {"handlers": [], "level": "INFO", "propagate": True},
        "django.db.backends": {"level": "WARNING"},
        "celery": {"level": "INFO"},
    },
}
LOG_REQUESTS = env_bool("LOG_REQUESTS", not DEBUG)  # one line per request: method, path, status, time
# /metrics (Prometheus) answers only requests with "Authorization: Bearer <METRICS_TOKEN>"; unset: off (404).
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
# Error reports to Sentry (or a compatible service) with the Django and Celery integrations; unset: off.
SENTRY_DSN = os.environ.get("SENTRY_DSN", "")
if SENTRY_DSN:
    from catalog.observability import sentry_init  # noqa: E402,PLC0415 - only when error reporting is on

    sentry_init(SENTRY_DSN, environment=os.environ.get("SENTRY_ENVIRONMENT", "production"))
