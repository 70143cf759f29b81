"""The start and end of a saved answer on the autosave's fast path (config.handlers.RequestLifecycle): while Django's
own receivers of request_started / request_finished are the only ones, the fast path does their work without
sending the signals. What a user of the database sees must not change: a connection past its CONN_MAX_AGE is
closed when the request starts or ends, a kept one is kept, the query log starts empty, a cache that closes is
closed, and anything connected to the signals later gets them again. A kept connection the server closed while it
sat idle is replaced by the save itself (its first read runs again on a new connection), without a health check
before every save.

These requests run with close_old_connections connected (as under gunicorn), so the tests run outside a test
transaction (a connection that closes must not take the test's data with it)."""

import json

import pytest
from django.core import signals
from django.core.cache import caches
from django.db import OperationalError, connection, transaction
from django.test import RequestFactory

from catalog.cache import LocMemCache
from config.handlers import DJANGO_REQUEST_FINISHED, DJANGO_REQUEST_STARTED, AvcrowdWSGIHandler, reviewed_receivers
from crowd.models import ClipAnswer
from crowd.services.assignments import answer_save_with_token
from tests.crowd_helpers import complete_payload
from tests.db_helpers import terminate_backend

pytestmark = pytest.mark.django_db(transaction=True)

needs_closable_db = pytest.mark.skipif(
    connection.vendor == "sqlite", reason="an in-memory SQLite test database is never closed (Django keeps it)"
)


@pytest.fixture
def no_signal_sent(monkeypatch):
    """Records every request_started / request_finished sent (the receiver lists stay as they are)."""
    sent = []
    for name in ("request_started", "request_finished"):
        signal = getattr(signals, name)
        original = signal.send

        def send(sender, _name=name, _original=original, **named):
            sent.append(_name)
            return _original(sender, **named)

        monkeypatch.setattr(signal, "send", send)
    return sent


def save(app, url, token, comment="") -> int:
    body = json.dumps(dict(complete_payload(), comment=comment))
    environ = RequestFactory().put(url, body, content_type="application/json", HTTP_X_HIT_TOKEN=token).environ
    out = {}
    result = app(environ, lambda status, headers, exc_info=None: out.setdefault("status", int(status.split()[0])))
    b"".join(result)
    result.close()
    return out["status"]


def test_djangos_request_receivers_are_the_ones_the_fast_path_was_reviewed_for():
    """If a Django upgrade changes its receivers, the fast path sends the signals again; this test says so."""
    assert reviewed_receivers(signals.request_started.receivers, DJANGO_REQUEST_STARTED)
    assert reviewed_receivers(signals.request_finished.receivers, DJANGO_REQUEST_FINISHED)
    lifecycle = AvcrowdWSGIHandler().autosave.lifecycle
    assert (lifecycle.started_by_django_only(), lifecycle.finished_by_django_only()) == (True, True)


@needs_closable_db
@pytest.mark.parametrize("max_age", [0, 600])
def test_a_connection_is_closed_after_a_save_exactly_when_django_would_close_it(started, no_signal_sent, max_age):
    """CONN_MAX_AGE 0: the save's connection is closed when the request ends (close_old_connections); 600: the
    same connection serves the next save. Done without sending the signals."""
    data, _, url = started
    app = AvcrowdWSGIHandler()
    connection.close()
    saved = connection.settings_dict["CONN_MAX_AGE"]
    connection.settings_dict["CONN_MAX_AGE"] = max_age
    try:
        assert save(app, url, data["token"], "first") == 200
        first = connection.connection
        assert (first is None) == (max_age == 0)
        assert save(app, url, data["token"], "second") == 200
        assert (connection.connection is None) == (max_age == 0)
        if max_age:
            assert connection.connection is first
    finally:
        connection.settings_dict["CONN_MAX_AGE"] = saved
        connection.close()
    assert no_signal_sent == []
    assert ClipAnswer.objects.get(assignment__uuid=data["assignment"]).comment == "second"


@needs_closable_db
def test_a_connection_past_its_age_is_replaced_when_a_save_starts(started, no_signal_sent):
    data, _, url = started
    app = AvcrowdWSGIHandler()
    assert save(app, url, data["token"], "first") == 200
    old = connection.connection
    assert old is not None
    connection.close_at = 0  # long past its CONN_MAX_AGE
    assert save(app, url, data["token"], "second") == 200
    assert connection.connection is not None and connection.connection is not old and old.closed
    assert no_signal_sent == []


def test_the_query_log_starts_empty_on_every_save(started, no_signal_sent):
    data, _, url = started
    app = AvcrowdWSGIHandler()
    connection.ensure_connection()
    connection.queries_log.append({"sql": "left by an earlier request", "time": "0.000"})
    assert save(app, url, data["token"]) == 200
    assert all(q["sql"] != "left by an earlier request" for q in connection.queries_log)
    assert no_signal_sent == []


class ClosingCache(LocMemCache):
    closed = 0

    def close(self, **kwargs):
        type(self).closed += 1


def test_a_cache_that_closes_is_closed_when_a_save_ends(started, settings, no_signal_sent):
    """close_caches' work: Django's memory and Redis caches do nothing on close, memcached does."""
    data, _, url = started
    app = AvcrowdWSGIHandler()
    assert app.autosave.lifecycle.close_caches is False
    settings.CACHES = {"default": {"BACKEND": f"{__name__}.ClosingCache", "LOCATION": "closing"}}
    assert app.autosave.lifecycle.close_caches is True
    assert isinstance(caches["default"], ClosingCache)
    ClosingCache.closed = 0
    assert save(app, url, data["token"]) == 200
    assert ClosingCache.closed == 1
    assert no_signal_sent == []


def test_a_receiver_connected_later_gets_both_signals_once_per_save(started, no_signal_sent):
    data, _, url = started
    app = AvcrowdWSGIHandler()
    got = []

    def on_started(sender, **kwargs):
        got.append(("started", kwargs["environ"]["PATH_INFO"]))

    def on_finished(sender, **kwargs):
        got.append(("finished", sender))

    signals.request_started.connect(on_started)
    signals.request_finished.connect(on_finished)
    try:
        assert save(app, url, data["token"]) == 200
    finally:
        signals.request_started.disconnect(on_started)
        signals.request_finished.disconnect(on_finished)
    assert got == [("started", url), ("finished", type(app.autosave.handler))]
    assert no_signal_sent == ["request_started", "request_finished"]
    got.clear()
    no_signal_sent.clear()
    assert save(app, url, data["token"]) == 200  # disconnected again: Django's receivers alone
    assert got == [] and no_signal_sent == []


needs_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the PostgreSQL backend's lost-connection check (config.db.postgresql)"
)


@needs_postgresql
def test_a_save_on_a_kept_connection_the_server_closed_is_saved_on_a_new_one(started, settings):
    """No health check before the save (the check would have looked again only after an hour here): the first read
    fails on the dead connection and runs again on a new one; the annotator sees a saved answer."""
    settings.DATABASE_HEALTH_CHECK_SECONDS = 3600
    data, _, url = started
    app = AvcrowdWSGIHandler()
    assert save(app, url, data["token"], "first") == 200
    old = connection.connection
    assert old is not None  # kept between requests (CONN_MAX_AGE)
    pid = terminate_backend(connection)
    try:
        assert save(app, url, data["token"], "second") == 200
        assert connection.connection is not old and old.closed
        assert connection.connection.info.backend_pid != pid
        assert save(app, url, data["token"], "third") == 200  # the new connection is kept in turn
    finally:
        connection.close()
    assert ClipAnswer.objects.get(assignment__uuid=data["assignment"]).comment == "third"


@needs_postgresql
def test_inside_a_transaction_a_lost_connection_fails_the_save_and_is_not_replaced(started):
    """What a transaction had done went with its connection: the save must fail, not carry on on a new one."""
    data, vid, _ = started
    connection.ensure_connection()
    try:
        with pytest.raises(OperationalError):
            with transaction.atomic():
                terminate_backend(connection)
                answer_save_with_token(data["assignment"], data["token"], vid, dict(complete_payload()))
    finally:
        connection.close()
    assert not ClipAnswer.objects.filter(assignment__uuid=data["assignment"]).exists()
