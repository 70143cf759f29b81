"""/healthz, /readyz and /metrics as load balancers, container healthchecks and Prometheus use them; request ids;
logs as JSON lines, each once; error reports to Sentry."""

from __future__ import annotations

import gzip
import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from catalog.observability import JsonFormatter
from tests.celery_helpers import broker_at

ROOT = Path(__file__).resolve().parent.parent.parent


def test_healthz_answers_without_the_database(client):
    r = client.get("/healthz")  # no db fixture: a query would fail the test
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    assert r["Cache-Control"].startswith("no-store") or "no-cache" in r["Cache-Control"]


def test_readyz_checks_database_migrations_broker_and_storage(client, db):
    r = client.get("/readyz")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"] == {"ok": True}
    assert body["checks"]["storage"] == {"ok": True}
    assert body["checks"]["broker"] == {"ok": True, "detail": "not used: tasks run in-process"}


def test_readyz_names_what_is_down_without_hosts_or_secrets(client, db, settings):
    """A broker nobody answers at and a bucket that does not exist: 503, each named by error type only."""
    settings.AWS_STORAGE_BUCKET_NAME = "avcrowd-missing-bucket"
    settings.AWS_S3_ENDPOINT_URL = ""
    settings.AWS_S3_ACCESS_KEY_ID, settings.AWS_S3_SECRET_ACCESS_KEY = "AKIASECRETKEYID", "very-secret-value"
    settings.AWS_S3_REGION_NAME = "us-east-1"
    with broker_at("redis://:brokerpassword@127.0.0.1:1/0"), mock_aws():
        r = client.get("/readyz")
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == {"ok": True}
    assert body["checks"]["broker"]["ok"] is False and body["checks"]["broker"]["error"]
    assert body["checks"]["storage"] == {"ok": False, "error": "ClientError"}
    text = r.content.decode()
    for secret in ("brokerpassword", "127.0.0.1", "AKIASECRETKEYID", "very-secret-value", "avcrowd-missing-bucket"):
        assert secret not in text


def test_readyz_with_s3_storage_that_exists(client, db, settings):
    settings.AWS_STORAGE_BUCKET_NAME = "avcrowd-media"
    settings.AWS_S3_ENDPOINT_URL = ""
    settings.AWS_S3_REGION_NAME = "us-east-1"
    settings.AWS_S3_ACCESS_KEY_ID, settings.AWS_S3_SECRET_ACCESS_KEY = "k", "s"
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="avcrowd-media")
        r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["checks"]["storage"] == {"ok": True}


def test_metrics_are_off_without_a_token_and_need_it(client, db, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404
    settings.METRICS_TOKEN = "s3cret-token"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Token s3cret-token").status_code == 401
    r = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token")
    assert r.status_code == 200 and r["Content-Type"].startswith("text/plain")


def _sample(text: str, name: str, **labels) -> float | None:
    for line in text.splitlines():
        if line.startswith((name + "{", name + " ")) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_metrics_count_saves_requests_tasks_open_hits_and_spend(client, db, settings, make_crowd_dataset):
    from decimal import Decimal

    from catalog.tasks import operations_fail_stale_task
    from crowd.models import Batch, Hit
    from crowd.services.batches import batches_create

    settings.METRICS_TOKEN = "tok"
    auth = {"HTTP_AUTHORIZATION": "Bearer tok"}
    before = client.get("/metrics", **auth).content.decode()
    saves_before = _sample(before, "avcrowd_answer_saves_total", kind="answer") or 0
    task = "catalog.tasks.operations_fail_stale_task"
    tasks_before = _sample(before, "avcrowd_celery_tasks_total", task=task, state="SUCCESS") or 0

    ds = make_crowd_dataset("metrics", 4, 0, batch_size=4, gold_per_batch=0, budget_usd=50)
    batch = batches_create(ds)[0]
    for n, sandbox in ((1, False), (2, True)):
        Hit.objects.create(
            batch=batch,
            backend="mturk",
            sandbox=sandbox,
            status=Hit.OPEN,
            reward=Decimal("1.00"),
            max_assignments=3,
            target_assignments=3,
            external_id=f"HIT{n}",
            unique_request_token=f"t{n}",
        )
    session = client.get(f"/api/hit/{batch.uuid}/session?workerId=W1&assignmentId=A1&hitId=HIT1").json()
    for item in session["clips"]:
        r = client.put(
            f"/api/hit/assignments/{session['assignment']}/answers/{item['video_id']}",
            data=json.dumps({"labels": [], "background_music": False, "voice_over": False, "static_image": False}),
            content_type="application/json",
            HTTP_X_HIT_TOKEN=session["token"],
        )
        assert r.status_code == 200, r.content
    operations_fail_stale_task.delay()  # runs in-process here (no broker): counted by this process

    text = client.get("/metrics", **auth).content.decode()
    assert _sample(text, "avcrowd_answer_saves_total", kind="answer") == saves_before + 4
    assert _sample(text, "avcrowd_http_request_duration_seconds_count", method="PUT", status="200") >= 4
    assert _sample(text, "avcrowd_open_hits", backend="mturk", env="production") == 1
    assert _sample(text, "avcrowd_open_hits", backend="mturk", env="sandbox") == 1
    committed = _sample(text, "avcrowd_spend_usd", dataset="metrics", kind="committed")
    assert committed == pytest.approx(3 * 1.2)  # three assignments of $1.00 with MTurk's 20 % fee
    assert _sample(text, "avcrowd_budget_usd", dataset="metrics") == 50
    assert _sample(text, "avcrowd_celery_tasks_total", task=task, state="SUCCESS") == tasks_before + 1
    assert Batch.objects.filter(dataset=ds).count() == 1


def test_a_request_id_comes_back_and_is_on_every_log_line_of_the_request(client, db, caplog):
    r = client.get("/healthz", HTTP_X_REQUEST_ID="probe-123")
    assert r["X-Request-ID"] == "probe-123"
    r = client.get("/healthz", HTTP_X_REQUEST_ID="no spaces or <tags> allowed")
    assert len(r["X-Request-ID"]) == 32 and r["X-Request-ID"].isalnum()  # a strange id is replaced, not echoed


def test_new_request_ids_differ_between_requests_and_between_forked_workers():
    """gunicorn imports the app, then forks its workers: each worker's ids must differ from every other's (the
    generator is reseeded in every child), and from one request to the next."""
    import os

    from catalog.observability import request_id

    ids = {request_id({}) for _ in range(1000)}
    assert len(ids) == 1000 and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    children = []
    for _ in range(2):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # a worker: its first ids
            os.close(read)
            os.write(write, " ".join(request_id({}) for _ in range(3)).encode())
            os._exit(0)
        os.close(write)
        with os.fdopen(read) as pipe:
            children.append(pipe.read().split())
        os.waitpid(pid, 0)
    parent = [request_id({}) for _ in range(3)]
    assert len({*children[0], *children[1], *parent}) == 9, (children, parent)


def test_json_log_lines_carry_the_request_id_and_the_exception():
    import logging

    from catalog.observability import RequestIdFilter, request_id_var

    record = logging.LogRecord("avcrowd.test", logging.ERROR, __file__, 1, "saved %s", ("x",), None)
    token = request_id_var.set("rid-1")
    try:
        RequestIdFilter().filter(record)
    finally:
        request_id_var.reset(token)
    try:
        raise ValueError("boom")
    except ValueError:
        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    assert "\n" not in line
    data = json.loads(line)
    assert data["message"] == "saved x" and data["request_id"] == "rid-1" and data["level"] == "ERROR"
    assert "ValueError: boom" in data["exception"]


def _manage_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DEBUG", "LOG_"))}
    env.update(AVCROWD_ENV_FILE="", AVCROWD_DEV="1", **extra)
    return env


@pytest.mark.parametrize("fmt", ["plain", "json"])
def test_each_log_line_is_written_once(fmt):
    """With DEBUG=1 Django's own console handler used to print django.* lines a second time."""
    script = "import logging; logging.getLogger('django.request').warning('only-once-marker')"
    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=ROOT,
        env=_manage_env(DEBUG="1", LOG_FORMAT=fmt),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    lines = [line for line in (out.stdout + out.stderr).splitlines() if "only-once-marker" in line]
    assert len(lines) == 1, lines
    if fmt == "json":
        record = json.loads(lines[0])
        assert record["logger"] == "django.request" and record["level"] == "WARNING"


def _sentry_run(script: str, **env) -> tuple[subprocess.CompletedProcess, list[bytes]]:
    """Run `script` in `manage.py shell` with SENTRY_DSN pointing at a local stand-in for Sentry's ingest endpoint;
    returns the process and the bodies the stand-in received."""
    received: list[bytes] = []

    class Ingest(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append(gzip.decompress(body) if self.headers.get("Content-Encoding") == "gzip" else body)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ingest)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    script += "\nimport sentry_sdk\nsentry_sdk.get_client().flush(timeout=10)\n"
    try:
        out = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", script],
            cwd=ROOT,
            env=_manage_env(SENTRY_DSN=f"http://publickey@127.0.0.1:{server.server_port}/1", **env),
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        server.shutdown()
    return out, received


def test_errors_are_reported_to_sentry_when_a_dsn_is_set():
    """A local stand-in for Sentry's ingest endpoint receives the error, with the Django and Celery integrations."""
    script = (
        "import logging, sentry_sdk\n"
        "logging.getLogger('avcrowd.test').error('sentry-marker went wrong')\n"
        "print('INTEGRATIONS', sorted(sentry_sdk.get_client().integrations))\n"
    )
    out, received = _sentry_run(script)
    assert out.returncode == 0, out.stderr
    assert "'celery'" in out.stdout and "'django'" in out.stdout
    assert any(b"sentry-marker went wrong" in body for body in received), received


def test_an_error_in_the_autosave_is_reported_to_sentry():
    """The autosave takes its own path through the server (config.handlers.AutosaveFastPath): a bug in it still
    answers 500 and reaches Sentry, as on every other request."""
    script = (
        "from django.test import RequestFactory\n"
        "from config.wsgi import application\n"
        "from crowd.services import assignments\n"
        "def broken(*args, **kwargs):\n"
        "    raise RuntimeError('sentry-autosave-marker')\n"
        "assignments.answer_save_with_token = broken\n"
        "environ = RequestFactory().put('/api/hit/assignments/x/answers/y', b'{}', content_type='application/json',"
        " secure=True, HTTP_HOST='hits.example.org', HTTP_X_HIT_TOKEN='t').environ\n"
        "statuses = []\n"
        "body = application(environ, lambda status, headers: statuses.append(status))\n"
        "b''.join(body)\n"
        "body.close()\n"
        "print('STATUS', statuses, 'FAST', application.autosave.enabled)\n"
    )
    out, received = _sentry_run(script, ALLOWED_HOSTS="hits.example.org")
    assert out.returncode == 0, out.stderr
    assert "STATUS ['500 Internal Server Error'] FAST True" in out.stdout, out.stdout
    assert any(b"sentry-autosave-marker" in body for body in received), received


@pytest.mark.parametrize("path", ["/api/docs/", "/api/redoc/"])
def test_api_docs_load_their_assets_from_our_own_static_files(client, db, path):
    """Swagger UI and Redoc work offline and under a strict CSP: no CDN, the sidecar's copies."""
    page = client.get(path).content.decode()
    assert "/static/drf_spectacular_sidecar/" in page
    assert "cdn.jsdelivr" not in page and "unpkg.com" not in page and "@latest" not in page
