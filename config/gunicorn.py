"""gunicorn settings (`gunicorn --config config/gunicorn.py config.wsgi:application`), from the environment:

GUNICORN_BIND (default 0.0.0.0:8000), WEB_CONCURRENCY processes (default 2, one per core) of GUNICORN_THREADS
threads (default 16; see docs/benchmarks.md, "Annotator saves"), LOG_FORMAT=json for gunicorn's own lines too,
PROMETHEUS_MULTIPROC_DIR (emptied at start) so that /metrics adds up every process. GUNICORN_CERTFILE /
GUNICORN_KEYFILE serve TLS directly (the smoke test; in docker compose Caddy terminates TLS).
"""

import gc
import os
import shutil

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "16"))
worker_class = "gthread"
timeout = 60  # no request runs long: long work is queued as an Operation
preload_app = True  # import the app once, then fork: faster start, shared memory
graceful_timeout = 30
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "*")  # only Caddy can reach gunicorn
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"
if os.environ.get("GUNICORN_CERTFILE"):
    certfile = os.environ["GUNICORN_CERTFILE"]
    keyfile = os.environ.get("GUNICORN_KEYFILE")

if os.environ.get("LOG_FORMAT", "plain").strip().lower() == "json":
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "catalog.observability.JsonFormatter"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
        "loggers": {
            "gunicorn.error": {"handlers": ["console"], "level": "INFO", "propagate": False},
            # requests are logged once, by the app (logger avcrowd.request, with the request id)
            "gunicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }


def pre_fork(server, worker):
    # The app is loaded (preload_app) and about to be shared by fork: move every object it made to the collector's
    # permanent generation. The workers' collections then skip the ~hundreds of thousands of objects of Django, the
    # URL maps and the views (about 5 % of an autosave's CPU: docs/benchmarks.md, "Autosave overhead"), and do not
    # write to their pages, which stay shared between the workers (Python's gc.freeze documentation).
    gc.freeze()


def on_starting(server):
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:  # counters of an earlier run must not be added to this one's
        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(directory, exist_ok=True)


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess  # noqa: PLC0415 - only with multiprocess metrics

        multiprocess.mark_process_dead(worker.pid)
