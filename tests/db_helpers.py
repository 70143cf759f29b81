"""PostgreSQL sessions ended by the server, for the tests of kept connections (a restart, pg_terminate_backend or an
idle timeout, as a client sees it)."""


def terminate_backend(conn) -> int:
    """Has the server end the session of `conn` (a Django DatabaseWrapper with an open connection) from another
    connection, and returns the ended backend's pid once that backend has exited, as a restart does (PostgreSQL's
    `pg_terminate_backend(pid, timeout)`; the plain form only signals it), so that its goodbye is on conn's socket
    (the smoke test's database restart waits the same way)."""
    pid = conn.connection.info.backend_pid
    other = conn.get_new_connection(conn.get_connection_params())
    try:
        other.autocommit = True
        assert other.execute("SELECT pg_terminate_backend(%s, 10000)", [pid]).fetchone()[0] is True
    finally:
        other.close()
    return pid
