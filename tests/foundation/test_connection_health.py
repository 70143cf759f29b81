"""A kept PostgreSQL connection is checked before a request uses it (config/db/postgresql): a connection the server
closed (a restart, pg_terminate_backend) is replaced before the request's first query, as with Django's
`SELECT 1` before every request; a connection in steady use is checked by a look at its socket instead of that
round trip, and with `SELECT 1` again once its last one is DATABASE_HEALTH_CHECK_SECONDS old."""

import pytest
from django.db import DEFAULT_DB_ALIAS, connection, connections

from tests.db_helpers import terminate_backend

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the PostgreSQL backend's health check"),
]


@pytest.fixture
def kept():
    """A second connection to the test database, kept between requests as in a server (CONN_MAX_AGE), with
    Django's health checks on; counts the SELECT 1 checks it makes."""
    default = connections[DEFAULT_DB_ALIAS]
    conn = type(default)(dict(default.settings_dict, CONN_HEALTH_CHECKS=True), DEFAULT_DB_ALIAS)
    conn.ensure_connection()
    assert conn.health_check_enabled
    conn.checks = 0
    usable = conn.is_usable

    def counted():
        conn.checks += 1
        return usable()

    conn.is_usable = counted
    yield conn
    conn.close()


def request(conn) -> int:
    """What a request does with the connection: the check at its start (request_started), then a query. Returns
    the server process that answered it."""
    conn.close_if_unusable_or_obsolete()
    with conn.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def test_a_connection_in_steady_use_is_checked_without_a_round_trip(kept, settings):
    settings.DATABASE_HEALTH_CHECK_SECONDS = 60
    pid = request(kept)
    for _ in range(5):
        assert request(kept) == pid
    assert kept.checks == 0


def test_a_connection_whose_last_check_is_old_is_checked_with_select_1(kept, settings):
    settings.DATABASE_HEALTH_CHECK_SECONDS = 60
    request(kept)
    kept.health_checked_at -= 61
    request(kept)
    assert kept.checks == 1
    request(kept)  # and then not again for a while
    assert kept.checks == 1
    settings.DATABASE_HEALTH_CHECK_SECONDS = 0  # 0: before every request, as Django does
    request(kept)
    request(kept)
    assert kept.checks == 3


def test_a_connection_the_server_closed_is_replaced_before_the_request_uses_it(kept, settings):
    settings.DATABASE_HEALTH_CHECK_SECONDS = 3600
    pid = request(kept)
    assert terminate_backend(kept) == pid
    new_pid = request(kept)  # no error: the check saw it, SELECT 1 failed, Django connected anew
    assert new_pid != pid and kept.checks == 1
    assert request(kept) == new_pid and kept.checks == 1
    # the check watches the new connection's socket, not the one it watched before
    assert terminate_backend(kept) == new_pid
    third_pid = request(kept)
    assert third_pid not in (pid, new_pid) and kept.checks == 2
    assert request(kept) == third_pid and kept.checks == 2
