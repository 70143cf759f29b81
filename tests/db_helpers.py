"""PostgreSQL sessions ended by the server, for the tests of kept connections (a restart, pg_terminate_backend or an
idle timeout, as a client sees it)."""

import select
import time


def terminate_backend(conn) -> int:
    """Has the server end the session of `conn` (a Django DatabaseWrapper with an open connection) from another
    connection, and waits until the server's goodbye reaches conn's socket (terminating is asynchronous). Returns the
    ended backend's pid."""
    pid = conn.connection.info.backend_pid
    other = conn.get_new_connection(conn.get_connection_params())
    try:
        other.autocommit = True
        assert other.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone()[0] is True
    finally:
        other.close()
    poller = select.poll()
    poller.register(conn.connection.fileno(), select.POLLIN)
    deadline = time.monotonic() + 10
    while not poller.poll(100) and time.monotonic() < deadline:
        pass
    return pid
