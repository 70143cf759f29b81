"""Benchmark (not a test): what one autosave costs in this process, through the real WSGI application.

    .venv/bin/python bench/profile_saves.py [--database-url postgres://postgres@127.0.0.1:5432/avcrowd_bench]
                                            [--saves 2000] [--profile 30] [--cache-url redis://127.0.0.1:6379/11]

Same set-up as bench/bench_saves.py (the bench database, one batch, simulated workers bound in-process), then
calls config.wsgi.application directly with the HIT page's PUT (no server, no socket), one save after another.
Prints per save: wall and CPU time (time.process_time), the database round trips (every statement sent on the
connection, BEGIN/COMMIT and the health check's SELECT 1 included, counted at psycopg's level), the cache calls,
and with --profile N the N functions with the most own time under cProfile. Compare with the floor's Python:
bench/bare_saves_app.py is called the same way with --app bare.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_saves import (  # noqa: E402
    DEFAULT_DB,
    bare_sql_env,
    bench_env,
    ensure_database,
    payload,
    prepare,
    setup_django,
)


def environ_for(uuid: str, token: str, vid: str, body: bytes) -> dict:
    return {
        "REQUEST_METHOD": "PUT",
        "SCRIPT_NAME": "",
        "PATH_INFO": f"/api/hit/assignments/{uuid}/answers/{vid}",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_X_HIT_TOKEN": token,
        "HTTP_CONNECTION": "keep-alive",
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }


def backend_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a PostgreSQL backend process on this machine (0 when it cannot be read)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Counter:
    def __init__(self):
        self.statements = 0
        self.cache = 0
        self.redis = 0


def count_round_trips(counter: Counter):
    """Count every statement psycopg sends (each a round trip: cursors' statements, the health check's SELECT 1,
    BEGIN, COMMIT), every call of Django's cache API and every command sent to Redis (a round trip each: the
    throttles' script is one, where `cache.incr` is two).
    Returns a function that undoes the counting."""
    import psycopg
    import redis
    from django.core.cache import cache
    from psycopg._connection_base import BaseConnection

    undo = []

    def wrap(owner, name, field):
        original = getattr(owner, name)

        def counted(*a, **kw):
            setattr(counter, field, getattr(counter, field) + 1)
            return original(*a, **kw)

        if isinstance(owner, type):
            setattr(owner, name, counted)
            undo.append(lambda: setattr(owner, name, original))
        else:
            setattr(owner, name, counted)
            undo.append(lambda: delattr(owner, name))

    wrap(psycopg.Cursor, "execute", "statements")  # every cursor's statement (Connection.execute makes a cursor)
    wrap(BaseConnection, "_exec_command", "statements")  # BEGIN, COMMIT, ROLLBACK, SAVEPOINT
    for name in ("get", "set", "add", "incr", "get_many", "set_many", "delete", "count_in_order"):
        if hasattr(cache, name):  # count_in_order: catalog.cache.LocMemCache's rate-limit counters, one call
            wrap(cache, name, "cache")
    wrap(redis.Redis, "execute_command", "redis")

    def undo_all():
        for step in reversed(undo):
            step()

    return undo_all


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default=os.environ.get("DATABASE_URL", DEFAULT_DB))
    ap.add_argument("--cache-url", default="", help="a Redis URL for the throttles' counters (default: memory)")
    ap.add_argument("--saves", type=int, default=100, help="saves per round and application")
    ap.add_argument("--rounds", type=int, default=20, help="rounds; each runs every application once, in turn")
    ap.add_argument(
        "--apps",
        default="django,plain,bare",
        help="django: config.wsgi.application; plain: Django's own WSGIHandler (every request through the full "
        "middleware and URL map); bare: bench/bare_saves_app.py. Interleaved round by round, so that the load of "
        "a shared machine falls on each alike",
    )
    ap.add_argument("--profile", type=int, default=0, help="then profile the first app: the N costliest functions")
    args = ap.parse_args()
    ensure_database(args.database_url)
    env = dict(bench_env(args.database_url, args.cache_url), HIT_THROTTLE_WRITE_ASSIGNMENT="100000000/minute")
    setup_django(env)
    from django.db import connection

    from catalog.selectors.taxonomy import class_names

    _, _, assignments = prepare(20)
    classes = class_names()
    vids = [f"b{i:02d}" for i in range(20)]
    os.environ.update(bare_sql_env())
    import bare_saves_app
    from django.core.handlers.wsgi import WSGIHandler

    from config.wsgi import application

    apps = {"django": application, "plain": WSGIHandler(), "bare": bare_saves_app.application}
    names = args.apps.split(",")

    def backend_pid(name):
        if name == "bare":
            return bare_saves_app._conn().info.backend_pid
        return connection.connection.info.backend_pid if connection.connection else None

    bodies = [
        (uuid, token, vids[k % len(vids)], json.dumps(payload(classes, k % len(assignments), k)).encode())
        for k in range(args.saves)
        for uuid, token in [assignments[k % len(assignments)]]
    ]
    statuses = {}

    def start_response(status, headers):
        statuses[status] = statuses.get(status, 0) + 1

    def one_pass(app, items):
        for uuid, token, vid, body in items:
            result = app(environ_for(uuid, token, vid, body), start_response)
            b"".join(result)
            if hasattr(result, "close"):
                result.close()

    counts = {}
    for name in names:
        one_pass(apps[name], bodies)  # warm: connection, prepared statements, class list, batch contents
        counter = Counter()
        undo = count_round_trips(counter)
        one_pass(apps[name], bodies)
        undo()
        counts[name] = (counter.statements / len(bodies), counter.cache / len(bodies), counter.redis / len(bodies))
    statuses.clear()
    totals = {name: [0.0, 0.0, 0.0, 0] for name in names}
    for _ in range(args.rounds):
        for name in names:
            pid = backend_pid(name)
            w0, c0, b0 = time.perf_counter(), time.process_time(), backend_cpu(pid)
            one_pass(apps[name], bodies)
            t = totals[name]
            t[0] += time.perf_counter() - w0
            t[1] += time.process_time() - c0
            if backend_pid(name) == pid:  # not when CONN_MAX_AGE replaced the connection during the round
                t[2] += backend_cpu(pid) - b0
                t[3] += 1
    n = args.rounds * len(bodies)
    print(f"{n} saves per application in {args.rounds} interleaved rounds; statuses {statuses}")
    for name in names:
        wall, cpu, db, db_rounds = totals[name]
        print(
            f"  {name:6s}: {1000 * wall / n:6.3f} ms wall, {1000 * cpu / n:6.3f} ms CPU in this process, "
            f"{1000 * db / max(1, db_rounds * len(bodies)):6.3f} ms CPU in the database backend per save; "
            f"{counts[name][0]:.1f} statements, {counts[name][1]:.1f} cache calls, "
            f"{counts[name][2]:.1f} Redis commands per save"
        )
    if args.profile:
        prof = cProfile.Profile(time.process_time)  # CPU time: what saturates the box
        prof.enable()
        for _ in range(5):
            one_pass(apps[names[0]], bodies)
        prof.disable()
        for order, limit in (("tottime", args.profile), ("cumulative", 2 * args.profile)):
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats(order).print_stats(limit)
            print(out.getvalue())
        if os.environ.get("PROFILE_CALLEES"):  # e.g. PROFILE_CALLEES=answer_save_with_token
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("cumulative").print_callees(os.environ["PROFILE_CALLEES"])
            print(out.getvalue())


if __name__ == "__main__":
    main()
