"""avcrowd settings: everything that differs between a laptop and production comes from the environment.

Defaults give the embedded set-up: SQLite under var/, Celery tasks run in-process, media under var/media.
See README.md ("Configuration") for every variable.
"""

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from .env import database_from_env, env_bool, env_list, env_seconds

BASE_DIR = Path(__file__).resolve().parent.parent
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
    "annotation",  # historical migrations only: the tables the apps below took over (docs/architecture.md)
    "catalog",
    "proposals",
    "crowd",
    "labels",
    "reports",
    "frontend",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "frontend.middleware.AvcrowdErrorMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "frontend.middleware.FrameAncestorsMiddleware",
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
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
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
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
if AWS_STORAGE_BUCKET_NAME:
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "endpoint_url": os.environ.get("AWS_S3_ENDPOINT_URL") or None,
            "region_name": os.environ.get("AWS_S3_REGION_NAME") or None,
            "querystring_auth": True,
            "querystring_expire": int(os.environ.get("AWS_QUERYSTRING_EXPIRE", "21600")),
            "file_overwrite": False,
            # Separate keys for the media store, so that MTurk keeps the standard AWS credential chain.
            "access_key": os.environ.get("AWS_S3_ACCESS_KEY_ID") or None,
            "secret_key": os.environ.get("AWS_S3_SECRET_ACCESS_KEY") or None,
        },
    }
# Local directories from which clips may be referenced by path (import_clips on a directory / CSV with paths).
MEDIA_IMPORT_ROOTS = env_list("MEDIA_IMPORT_ROOTS", [])

# --- Celery: no broker -> tasks run eagerly in-process -------------------------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND", CELERY_BROKER_URL or None)
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {"proposals.tasks.*": {"queue": "gpu"}}
CELERY_BEAT_SCHEDULE = {
    "approve-after-review-window": {"task": "crowd.tasks.assignments_approve_due_task", "schedule": 3600.0},
    "marketplace-sync": {
        "task": "crowd.tasks.marketplace_sync_task",
        "schedule": float(os.environ.get("MARKETPLACE_SYNC_SECONDS", "300")),
    },
}

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
}
SPECTACULAR_SETTINGS = {
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
# The HIT page is framed by MTurk across sites: its session cookie must be SameSite=None (HTTPS only).
SESSION_COOKIE_SAMESITE = "None" if not DEBUG else "Lax"
CSRF_COOKIE_SAMESITE = "None" if not DEBUG else "Lax"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
