"""Bulk writes of plain tuples (no model instances): PostgreSQL `COPY ... FROM STDIN` through psycopg 3, chunked
`executemany` of one-row INSERTs on SQLite (never one statement with more parameters than SQLite allows).

`bulk_insert` writes inside the caller's transaction. `bulk_insert_chunks` commits every chunk on its own, so a
large load never holds the write lock for long (on SQLite the lock is the whole database: a worker's autosave
waits for the chunk, a few milliseconds, not for the whole import); the caller keeps "all or nothing" by
validating first and undoing the chunks already committed when a later one fails (see catalog.services.clips).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Sequence

from django.db import connection, transaction

# rows per chunk: large on PostgreSQL (COPY streams), a few milliseconds of lock on SQLite
CHUNK_ROWS = {"postgresql": 20000, "sqlite": 2000}
# pause between committed chunks on SQLite so that a writer waiting on the busy timeout gets the lock
SQLITE_YIELD_SECONDS = 0.002


def chunk_rows() -> int:
    return CHUNK_ROWS.get(connection.vendor, 2000)


def _table(model_or_table) -> str:
    return model_or_table if isinstance(model_or_table, str) else model_or_table._meta.db_table


def bulk_insert(model_or_table, columns: Sequence[str], rows: Iterable[Sequence]) -> int:
    """Insert rows (tuples in `columns` order; column names are db columns) into a model's table in the
    current transaction. Returns the number of rows written. Rows are streamed, never listed whole."""
    qn = connection.ops.quote_name
    table = qn(_table(model_or_table))
    cols = ", ".join(qn(c) for c in columns)
    n = 0
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # psycopg 3: COPY streams the rows in PostgreSQL's text format, the fastest load it has (errors raised as
            # Django's IntegrityError/DatabaseError like any other query)
            with connection.wrap_database_errors, cursor.cursor.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
                    n += 1
        else:
            marks = ", ".join(["%s"] * len(columns))
            sql = f"INSERT INTO {table} ({cols}) VALUES ({marks})"
            it = iter(rows)
            while part := list(itertools.islice(it, 5000)):
                cursor.executemany(sql, part)  # one row per statement: no SQL-variable limit
                n += len(part)
    return n


_COPY_BINARY_HEADER = b"PGCOPY\n\xff\r\n\0" + b"\0\0\0\0" + b"\0\0\0\0"  # signature, no flags, no extension
_COPY_BINARY_TRAILER = b"\xff\xff"


def copy_binary(model_or_table, columns: Sequence[str], blocks: Iterable[bytes]) -> None:
    """PostgreSQL only: `COPY ... FROM STDIN (FORMAT BINARY)` of rows the caller has already encoded, many rows per
    block (e.g. a numpy record array's bytes: per row the field count as int16, then per field its length as int32
    and its value in network byte order; jsonb as version byte 1 + JSON text), in the current transaction. For
    millions of rows whose values come as arrays: no Python object per row or per value."""
    if connection.vendor != "postgresql":
        raise RuntimeError("copy_binary needs PostgreSQL; use bulk_insert")
    qn = connection.ops.quote_name
    sql = f"COPY {qn(_table(model_or_table))} ({', '.join(qn(c) for c in columns)}) FROM STDIN (FORMAT BINARY)"
    with connection.cursor() as cursor, connection.wrap_database_errors, cursor.cursor.copy(sql) as copy:
        copy.write(_COPY_BINARY_HEADER)
        for block in blocks:
            if block:
                copy.write(block)
        copy.write(_COPY_BINARY_TRAILER)


def chunks(rows: Iterable, size: int):
    """Lists of at most `size` items of an iterable."""
    it = iter(rows)
    while part := list(itertools.islice(it, size)):
        yield part


def bulk_insert_chunks(
    model_or_table,
    columns: Sequence[str],
    rows: Iterable[Sequence],
    *,
    size: int | None = None,
    after_chunk: Callable[[list], None] | None = None,
) -> int:
    """Like bulk_insert, but every chunk of `size` rows is its own short transaction; `after_chunk(rows)` runs
    inside that transaction (e.g. to write dependent rows) and so commits or fails with it. Must not be called
    inside an outer transaction (the chunks would become savepoints holding one long lock)."""
    if connection.in_atomic_block:
        raise RuntimeError("bulk_insert_chunks commits per chunk; call it outside transaction.atomic()")
    size = size or chunk_rows()
    n = 0
    for part in chunks(rows, size):
        with transaction.atomic():
            bulk_insert(model_or_table, columns, part)
            if after_chunk is not None:
                after_chunk(part)
        n += len(part)
        if connection.vendor == "sqlite":
            time.sleep(SQLITE_YIELD_SECONDS)
    return n


def analyze(*models_or_tables) -> None:
    """Refresh the planner's statistics after a bulk load (PostgreSQL's autovacuum may not have run yet; without
    statistics it plans sequential scans over a table it believes empty). A no-op on other databases."""
    if connection.vendor != "postgresql":
        return
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        for m in models_or_tables:
            cursor.execute(f"ANALYZE {qn(_table(m))}")


def analyze_if_stale(*models_or_tables, fraction: float = 0.2) -> list[str]:
    """ANALYZE the tables whose rows changed by more than `fraction` since their last analysis (or that were
    never analysed), before a large read: rows written in bulk by other paths (results-file imports, the
    simulator) are invisible to the planner until autovacuum runs, and a nested-loop plan over a table believed
    empty turns a 2 s load into minutes. Returns the tables analysed. A no-op on other databases."""
    if connection.vendor != "postgresql":
        return []
    names = [_table(m) for m in models_or_tables]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname FROM pg_stat_user_tables WHERE relname = ANY(%s) AND "
            "(COALESCE(last_analyze, last_autoanalyze) IS NULL "
            "OR n_mod_since_analyze > %s * GREATEST(n_live_tup, 1000))",
            [names, fraction],
        )
        stale = [row[0] for row in cursor.fetchall()]
    analyze(*stale)
    return stale
