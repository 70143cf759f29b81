"""The HIT page's autosave takes a shorter path through the server (config/handlers.py: less middleware, a one-pattern
URL map) than every other request. From the outside nothing tells the two apart: every check of the save (HIT token,
browser binding, token age, rate limits, assignment status, the body) answers with the same status, message and
headers as Django's full handler, a refused save changes nothing, and every response carries the same security
headers."""

import json
import time

import pytest
from django.core import signing
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client, RequestFactory
from django.urls import Resolver404, get_resolver, resolve

from config.handlers import (
    AUTOSAVE_PATH,
    AUTOSAVE_URLCONF,
    AutosaveFastPath,
    AutosaveHandler,
    AvcrowdWSGIHandler,
    is_autosave,
)
from crowd import api_hit
from crowd.models import Assignment, ClipAnswer
from crowd.services import assignments as svc
from tests.crowd_helpers import complete_payload
from tests.security.conftest import WORKER

pytestmark = pytest.mark.django_db


def call(app, environ) -> tuple[int, dict, bytes]:
    """One request through a WSGI application, as a WSGI server makes it (the test's database connection is kept,
    as Django's test client does)."""
    out = {}

    def start_response(status, headers, exc_info=None):
        out["status"], out["headers"] = int(status.split()[0]), headers

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        result = app(environ, start_response)
        body = b"".join(result)
        result.close()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    return out["status"], dict(out["headers"]), body


def put(path, body, token=None, method="put", **extra):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    headers = {"HTTP_X_HIT_TOKEN": token} if token else {}
    return getattr(RequestFactory(), method)(path, data, content_type="application/json", **headers, **extra).environ


@pytest.fixture
def apps():
    """(Django's own handler with the full middleware and URL map, the application gunicorn serves)."""
    return WSGIHandler(), AvcrowdWSGIHandler()


def comparable(headers: dict) -> dict:
    return {k: v for k, v in headers.items() if k != "X-Request-ID"}


def test_only_the_autosave_takes_the_short_path(started):
    data, vid, url = started
    assert is_autosave(put(url, {}, data["token"]))
    assert is_autosave(put(url, {}, data["token"], method="post"))
    for environ in (
        RequestFactory().get(url).environ,
        RequestFactory().delete(url).environ,
        put(f"/api/hit/assignments/{data['assignment']}/position", {"position": 1}, data["token"]),
        put(f"/api/hit/assignments/{data['assignment']}/submit", {}, data["token"], method="post"),
        put(url + "/", {}, data["token"]),
    ):
        assert not is_autosave(environ), environ["PATH_INFO"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/hit/assignments/6b1f/answers/r001",
        "/api/hit/assignments/6b1f/answers/r001/",
        "/api/hit/assignments/6b1f/answers/r001/x",
        "/api/hit/assignments//answers/r001",
        "/api/hit/assignments/6b1f/answers/",
        "/api/hit/assignments/6b1f/answers/clip%20é",
        "/api/hit/assignments/a/b/answers/r001",
        "/api/hit/assignments/6b1f/position",
        "/api/hitx/assignments/6b1f/answers/r001",
        "/xapi/hit/assignments/6b1f/answers/r001",
        "api/hit/assignments/6b1f/answers/r001",
    ],
)
def test_the_short_paths_pattern_is_the_url_maps(path):
    """AUTOSAVE_PATH (the cheap test of every request) matches exactly the paths that the full URL map sends to the
    autosave view, and that the autosave's own map resolves."""

    def resolves(urlconf=None):
        try:
            match = resolve(path, urlconf) if urlconf is None else get_resolver(urlconf).resolve(path)
        except Resolver404:
            return False
        return match.func is api_hit.answer

    expected = resolves()
    assert bool(AUTOSAVE_PATH.fullmatch(path)) == expected == resolves(AUTOSAVE_URLCONF)
    if expected:  # the same route, name and view: the metrics and logs label it alike
        full, short = resolve(path), get_resolver(AUTOSAVE_URLCONF).resolve(path)
        assert (full.route, full.view_name, full.kwargs) == (short.route, short.view_name, short.kwargs)
        # the short path's handler builds its match from AUTOSAVE_PATH's groups: the same as the full map's
        request = RequestFactory().put(path)  # the handler resolves the decoded path_info, as Django's does
        built, full = AutosaveHandler().resolve_request(request), resolve(request.path_info)
        assert request.resolver_match is built

        def fields(m):
            return (m.func, m.args, m.kwargs, m.captured_kwargs, m.extra_kwargs, m.url_name, m.route)

        assert fields(built) == fields(full)
        assert (built.view_name, built.app_names, built.namespaces, built._func_path) == (
            full.view_name,
            full.app_names,
            full.namespaces,
            full._func_path,
        )


def test_the_served_application_is_the_short_path_one():
    from config.wsgi import application

    assert isinstance(application, AvcrowdWSGIHandler) and isinstance(application.autosave, AutosaveFastPath)
    # the project's middleware is the set the fast path was reviewed for: a middleware added to MIDDLEWARE turns it
    # off (the autosave then takes AutosaveHandler) until config/handlers.py is reviewed for it
    assert application.autosave.enabled and isinstance(application.autosave.handler, AutosaveHandler)


def test_a_save_answers_and_stores_the_same_on_both_paths(started, apps):
    full, short = apps
    data, vid, url = started
    answers, name = [], data["classes"][5]
    for k, app in enumerate([full, short] * 4):  # 8 saves: the prepared statements are used too (PostgreSQL)
        body = complete_payload([{"name": name, "audible": True, "visible": k % 2 == 0}])
        body.update(watch_seconds=float(k), played=k < 3, comment=f"save {k}")
        status, headers, content = call(app, put(url, body, data["token"]))
        assert status == 200, content
        answers.append((headers, json.loads(content)))
    (h_full, b_full), (h_short, b_short) = answers[-2:]
    assert comparable(h_full) == comparable(h_short)
    assert b_full.keys() == b_short.keys() == {"saved", "video_id", "updated_at"}
    assert b_short["saved"] is True and b_short["video_id"] == vid
    row = ClipAnswer.objects.get(assignment__uuid=data["assignment"])
    assert (row.played, row.watch_seconds, row.comment) == (True, 7.0, "save 7")  # played stays true
    assert row.labels == [{"name": name, "audible": True, "visible": False}]


def test_every_response_of_the_short_path_carries_the_security_headers(started, apps):
    full, short = apps
    data, _, url = started
    for body, token in ((complete_payload(), data["token"]), (b"{not json", data["token"]), ({}, None)):
        statuses = set()
        for app in (full, short):
            status, headers, _ = call(app, put(url, body, token))
            statuses.add(status)
            assert headers["X-Frame-Options"] == "DENY"
            assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
            assert "script-src 'self'" in headers["Content-Security-Policy"]
            assert headers["X-Content-Type-Options"] == "nosniff"
            assert headers["Referrer-Policy"] and headers["Cross-Origin-Opener-Policy"] == "same-origin"
            assert headers["Cache-Control"] == "no-store" and headers["X-Request-ID"]
            assert int(headers["Content-Length"]) > 0
        assert len(statuses) == 1


def _refusals(batch, data, vid, url):
    """(what, (path, body, token), status, field, words of the message) of saves that must be refused."""
    a = Assignment.objects.get(uuid=data["assignment"])
    before_binding = signing.dumps({"a": str(a.uuid), "w": a.worker_id}, salt=svc.HIT_TOKEN_SALT)
    # the token of a session bound to another browser secret
    other_browser = signing.dumps({"a": str(a.uuid), "w": a.worker_id, "k": "0" * 16}, salt=svc.HIT_TOKEN_SALT)
    forged = data["token"][:-3] + ("aaa" if not data["token"].endswith("aaa") else "bbb")
    other = Client().get(f"/api/hit/{batch.uuid}/session", dict(WORKER, workerId="A2OTHER", assignmentId="3OTHER"))
    other_token = other.json()["token"]
    ok, token = complete_payload(), data["token"]
    return [
        ("no token", (url, ok, None), 403, "X-HIT-Token", "missing X-HIT-Token"),
        ("forged token", (url, ok, forged), 403, "X-HIT-Token", "not valid"),
        ("another worker's token", (url, ok, other_token), 403, "X-HIT-Token", "another assignment or worker"),
        ("token from before the binding", (url, ok, before_binding), 403, "X-HIT-Token", "before the assignment"),
        ("token bound to another browser", (url, ok, other_browser), 403, "X-HIT-Token", "before the assignment"),
        ("bad JSON", (url, b'{"played": tru', token), 400, "body", "not valid JSON"),
        ("not an object", (url, b"[1, 2]", token), 400, "body", "must be a JSON object"),
        ("unknown field", (url, dict(ok, score=3), token), 400, "score", "unknown field"),
        ("bad value", (url, dict(ok, watch_seconds=-1), token), 400, "watch_seconds", "allowed"),
        ("clip not in the batch", (url[: -len(vid)] + "zzz", ok, token), 400, "video_id", "not part of this batch"),
        ("unknown assignment", (url.replace(data["assignment"], "0" * 32), ok, token), 404, None, ""),
        ("not a uuid", (url.replace(data["assignment"], "nope"), ok, token), 404, None, ""),
    ]


def test_every_refused_save_is_refused_alike_on_both_paths_and_changes_nothing(batch, started, apps):
    full, short = apps
    data, vid, url = started
    assert call(short, put(url, complete_payload(), data["token"]))[0] == 200
    stored = list(ClipAnswer.objects.values())
    for what, request, status, field, words in _refusals(batch, data, vid, url):
        (s_full, h_full, b_full), (s_short, h_short, b_short) = (call(app, put(*request)) for app in (full, short))
        assert s_full == s_short == status, (what, b_full, b_short)
        assert b_full == b_short, what
        assert comparable(h_full) == comparable(h_short), what
        body = json.loads(b_short)
        assert body.get("field") == field and words in body["error"], (what, body)
    assert list(ClipAnswer.objects.values()) == stored


def test_a_save_after_the_assignment_ended_is_refused_alike(started, apps):
    full, short = apps
    data, _, url = started
    Assignment.objects.filter(uuid=data["assignment"]).update(status=Assignment.EXPIRED)
    results = [call(app, put(url, complete_payload(), data["token"])) for app in (full, short)]
    assert results[0][0] == results[1][0] == 403 and results[0][2] == results[1][2]
    assert "already expired" in json.loads(results[1][2])["error"]
    assert not ClipAnswer.objects.exists()


@pytest.mark.parametrize("seen_before", [False, True])
def test_an_old_token_is_refused_alike_whether_or_not_it_was_verified_before(started, apps, monkeypatch, seen_before):
    """The signature of a token is verified once per process; its age is checked on every save."""
    full, short = apps
    data, _, url = started
    svc._VERIFIED_TOKENS.clear()
    if seen_before:
        assert call(short, put(url, complete_payload(), data["token"]))[0] == 200
    later = time.time() + svc.HIT_TOKEN_MAX_AGE + 60
    monkeypatch.setattr(time, "time", lambda: later)
    before = list(ClipAnswer.objects.values())
    results = [call(app, put(url, complete_payload(labels=[]), data["token"])) for app in (short, full)]
    for status, _, body in results:
        assert status == 403 and "the session token has expired" in json.loads(body)["error"]
    assert list(ClipAnswer.objects.values()) == before


def test_a_token_verified_under_one_key_is_not_taken_under_another(started, apps, settings):
    _, short = apps
    data, _, url = started
    assert call(short, put(url, complete_payload(), data["token"]))[0] == 200
    settings.SECRET_KEY = "another-key-" + "y" * 40
    status, _, body = call(short, put(url, complete_payload(), data["token"]))
    assert status == 403 and "not valid" in json.loads(body)["error"]


def test_saves_are_throttled_alike_on_both_paths(started, apps, settings, monkeypatch):
    from rest_framework.throttling import SimpleRateThrottle

    full, short = apps
    data, _, url = started
    monkeypatch.setattr(SimpleRateThrottle, "timer", staticmethod(lambda: 1_000_020.0))  # one window throughout
    settings.HIT_THROTTLE_RATES = dict(settings.HIT_THROTTLE_RATES, hit_write_assignment="3/minute")
    codes = [call(app, put(url, complete_payload(), data["token"]))[0] for app in (short, full, short)]
    assert codes == [200, 200, 200]  # one counter for both paths
    refused = [call(app, put(url, complete_payload(labels=[]), data["token"])) for app in (short, full)]
    for status, headers, body in refused:
        assert status == 429 and int(headers["Retry-After"]) >= 1
        assert "too many requests for this assignment (limit 3/minute)" in json.loads(body)["error"]
    assert ClipAnswer.objects.get().labels == []  # the third save's, not the refused ones'


def test_the_host_check_and_https_redirect_apply_to_the_short_path(started, settings):
    data, _, url = started
    settings.ALLOWED_HOSTS = ["hits.example.org"]
    short = AvcrowdWSGIHandler()
    status, _, _ = call(short, put(url, complete_payload(), data["token"], HTTP_HOST="evil.example"))
    assert status == 400
    settings.SECURE_SSL_REDIRECT, settings.SECURE_HSTS_SECONDS = True, 3600
    short = AvcrowdWSGIHandler()  # the middleware reads these settings when the handler is made
    status, headers, _ = call(short, put(url, complete_payload(), data["token"], HTTP_HOST="hits.example.org"))
    assert status == 301 and headers["Location"].startswith("https://hits.example.org/api/hit/")
    secure = put(url, complete_payload(), data["token"], HTTP_HOST="hits.example.org", secure=True)
    status, headers, _ = call(short, secure)
    assert status == 200 and headers["Strict-Transport-Security"].startswith("max-age=3600")
    assert not ClipAnswer.objects.exclude(assignment__uuid=data["assignment"]).exists()


def _latency_count(route: str, status: str) -> float:
    from prometheus_client import REGISTRY

    value = REGISTRY.get_sample_value(
        "avcrowd_http_request_duration_seconds_count", {"method": "PUT", "route": route, "status": status}
    )
    return value or 0.0


def test_both_paths_count_log_and_signal_a_save_alike(started, apps, settings, caplog):
    """The latency metric (same route label), the request log line, Django's warning for a refusal, and
    request_started / request_finished once per request (what keeps the database connections healthy)."""
    full, short = apps
    data, _, url = started
    settings.LOG_REQUESTS = True
    route = "api/hit/assignments/<str:assignment_uuid>/answers/<str:video_id>"
    sent = []

    def on_started(sender, **kwargs):
        sent.append("started")

    def on_finished(sender, **kwargs):
        sent.append("finished")

    request_started.connect(on_started)
    request_finished.connect(on_finished)
    try:
        for app in (full, short):
            before = (_latency_count(route, "200"), _latency_count(route, "403"))
            sent.clear()
            caplog.clear()
            with caplog.at_level("INFO"):
                ok = call(app, put(url, complete_payload(), data["token"], HTTP_X_REQUEST_ID="probe-1"))
                refused = call(app, put(url, complete_payload(), None))
            assert (ok[0], refused[0]) == (200, 403) and ok[1]["X-Request-ID"] == "probe-1"
            assert (_latency_count(route, "200"), _latency_count(route, "403")) == (before[0] + 1, before[1] + 1)
            assert sent == ["started", "finished"] * 2, app
            lines = [(r.name, r.levelname, r.getMessage()) for r in caplog.records]
            assert ("avcrowd.request", "INFO", f"PUT {url} 200") in [(n, lv, m.rsplit(" ", 1)[0]) for n, lv, m in lines]
            assert ("django.request", "WARNING", f"Forbidden: {url}") in lines, lines
            assert next(r for r in caplog.records if r.name == "avcrowd.request").request_id == "probe-1"
    finally:
        request_started.disconnect(on_started)
        request_finished.disconnect(on_finished)


def test_an_unexpected_error_is_answered_reported_and_headed_alike(started, apps, monkeypatch, caplog):
    """A bug in the save (here the service raising) gives Django's 500 on both paths: the handler500 page, the
    error logged with its traceback, got_request_exception sent (error reporting hooks on it), the security
    headers, and nothing saved."""
    from django.core.signals import got_request_exception

    full, short = apps
    data, _, url = started

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in the service")

    monkeypatch.setattr(svc, "answer_save_with_token", broken)
    reported = []

    def on_exception(sender, request, **kwargs):
        reported.append(request.path)

    got_request_exception.connect(on_exception)
    try:
        results = []
        for app in (full, short):
            caplog.clear()
            status, headers, body = call(app, put(url, complete_payload(), data["token"]))
            errors = [r for r in caplog.records if r.name == "django.request" and r.levelname == "ERROR"]
            assert len(errors) == 1 and errors[0].exc_info[0] is RuntimeError
            results.append((status, comparable(headers), body))
    finally:
        got_request_exception.disconnect(on_exception)
    assert results[0] == results[1] and results[1][0] == 500
    assert (
        results[1][1]["X-Frame-Options"] == "DENY"
        and "frame-ancestors 'none'" in results[1][1]["Content-Security-Policy"]
    )
    assert reported == [url, url]
    assert not ClipAnswer.objects.exists()


class _Stamp:
    """A middleware the fast path was not reviewed for: it stamps every response."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response["X-Stamp"] = "yes"
        return response


def test_a_middleware_added_later_applies_to_the_autosave(started, settings, caplog):
    """A middleware added to MIDDLEWARE that the fast path does not know turns it off: the autosave goes through
    Django's chain again, where the new middleware applies, and a warning says so."""
    data, _, url = started
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, f"{__name__}._Stamp"]
    with caplog.at_level("WARNING", logger="config.handlers"):
        app = AvcrowdWSGIHandler()
    assert not app.autosave.enabled
    assert any("FAST_PATH_MIDDLEWARE" in r.getMessage() for r in caplog.records)
    status, headers, _ = call(app, put(url, complete_payload(), data["token"]))
    assert status == 200 and headers["X-Stamp"] == "yes"
    assert ClipAnswer.objects.filter(assignment__uuid=data["assignment"]).count() == 1


def test_a_failure_after_the_save_is_answered_as_djangos_outermost_handler_answers_it(started, apps, monkeypatch):
    """The request's own bookkeeping failing (here the latency metric) after the answer was saved: a 500 on both
    paths, the request still ends (request_finished, which returns the database connection's state), and the
    answer stays saved."""
    import catalog.observability
    import config.handlers

    full, short = apps
    data, _, url = started

    def broken(*args, **kwargs):
        raise RuntimeError("the metrics are broken")

    monkeypatch.setattr(catalog.observability, "record_request", broken)
    monkeypatch.setattr(config.handlers, "record_request", broken)
    finished = []

    def on_finished(sender, **kwargs):
        finished.append(sender)

    request_finished.connect(on_finished)
    try:
        statuses = [
            call(app, put(url, dict(complete_payload(), comment=f"via {k}"), data["token"]))[0]
            for k, app in enumerate((full, short))
        ]
    finally:
        request_finished.disconnect(on_finished)
    assert statuses == [500, 500] and len(finished) == 2
    assert ClipAnswer.objects.get(assignment__uuid=data["assignment"]).comment == "via 1"


def test_an_oversized_body_is_refused_alike_and_changes_nothing(started, apps, settings):
    """Over MAX_BODY: the HIT API's own 400; over Django's DATA_UPLOAD_MAX_MEMORY_SIZE: Django's (a suspicious
    operation, answered before the body is read)."""
    data, _, url = started
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
    for size in (api_hit.MAX_BODY + 10, 2 * 1024 * 1024):
        body = b'{"comment": "' + b"x" * size + b'"}'
        (s_full, h_full, b_full), (s_short, h_short, b_short) = (
            call(app, put(url, body, data["token"])) for app in apps
        )
        assert s_full == s_short == 400 and b_full == b_short, (size, b_full[:200], b_short[:200])
        assert comparable(h_full) == comparable(h_short)
    assert not ClipAnswer.objects.exists()
