"""Settings for the test suite: the real settings, plus what a test run needs.

DATABASE_URL / CELERY_BROKER_URL choose PostgreSQL and Redis when set (CI sets both). Tasks still run eagerly
in tests unless a test starts a real worker (tests/foundation/test_celery_worker.py flips that for itself).
"""

import os
import tempfile

os.environ.setdefault("AVCROWD_DEV", "1")
os.environ.setdefault("AVCROWD_ENV_FILE", "")  # a developer's .env (make run) must not change the test settings
os.environ.setdefault("AVCROWD_VAR_DIR", tempfile.mkdtemp(prefix="avcrowd-test-var-"))

from .settings import *  # noqa: E402,F401,F403
from .settings import BASE_DIR, STORAGES  # noqa: E402

DEBUG = False
ALLOWED_HOSTS = ["*"]
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
SECURE_HSTS_SECONDS = 0
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MEDIA_ROOT = tempfile.mkdtemp(prefix="avcrowd-test-media-")
CELERY_TASK_ALWAYS_EAGER = True
STATIC_ROOT = BASE_DIR / "staticfiles"
# templates render {% static %} without a collectstatic manifest (the production smoke test covers the manifest)
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
WHITENOISE_AUTOREFRESH = True  # no collectstatic in tests: serve from the apps (the smoke test serves the built files)
# rate-limit counters in this process's memory, cleared before every test (the Redis case has its own test)
CACHES = {"default": {"BACKEND": "catalog.cache.LocMemCache", "LOCATION": "avcrowd-test"}}
# the demo's and the browser tests' hand-off to this server's stand-in receiver
HIT_SUBMIT_TO_SELF = True
# local media in tests lives in temporary directories (pytest's tmp_path, the clip factory)
MEDIA_IMPORT_ROOTS = [tempfile.gettempdir()]
