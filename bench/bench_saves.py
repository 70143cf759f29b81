"""Benchmark (not a test): N simulated annotators autosaving answers concurrently against gunicorn.

    .venv/bin/python bench/bench_saves.py [--database-url postgres://postgres@127.0.0.1:5432/avcrowd_bench]
                                          [--levels 50,200,500] [--saves 10] [--workers 4 --threads 8]
                                          [--app django|bare] [--cache-url redis://127.0.0.1:6379/11]

Creates the database if it is missing (createdb), migrates it, loads the taxonomy, makes one bench dataset with
a batch of 20 clips and one assignment per simulated worker (bound in-process with the real services), starts
gunicorn on a free localhost port (the deployment's config/gunicorn.py: the app preloaded and frozen out of the
garbage collector before the fork; workers, threads and address from the options here), then for each concurrency
level opens one keep-alive HTTP connection per worker (asyncio streams, no client library) and has every worker PUT
`--saves` autosaves back to back, as the HIT page does. Reports saves/s and p50/p99 latency per level (and the p99
of the saves after each connection's first, which wait for no new connection), and the CPU time per save of the
server's processes, the database's backends and the load generator (on a shared machine a steadier measure than
saves/s), then checks every save reached the database (the row of each (assignment, clip)
pair holds the last value sent).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/avcrowd_bench"


def percentile(values: list[float], q: float) -> float:
    """The q-quantile of latencies in seconds, in milliseconds (the value at rank int(q * n) of the sorted list)."""
    ranked = sorted(values)
    return ranked[min(len(ranked) - 1, int(q * len(ranked)))] * 1000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_database(url: str) -> None:
    u = urlparse(url)
    if not u.scheme.startswith("postgres"):
        return
    name = u.path.lstrip("/")
    args = ["-h", u.hostname or "127.0.0.1", "-p", str(u.port or 5432), "-U", u.username or "postgres"]
    exists = subprocess.run(
        ["psql", *args, "-tAc", f"select 1 from pg_database where datname='{name}'", "postgres"],
        capture_output=True,
        text=True,
    )
    if exists.stdout.strip() != "1":
        subprocess.run(["createdb", *args, name], check=True)


def bench_env(database_url: str, cache_url: str = "") -> dict:
    """The server's environment in these benches (and the in-process ones: profile_saves, callgrind_saves)."""
    env = {
        "DATABASE_URL": database_url,
        "AVCROWD_DEV": "1",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "0",
        "LOG_LEVEL": "WARNING",
        # every simulated worker comes from 127.0.0.1: lift the per-address write limit (docs/operations.md)
        "HIT_THROTTLE_WRITE_IP": "100000000/minute",
    }
    if cache_url:
        env["CACHE_URL"] = cache_url
    return env


def setup_django(env: dict) -> None:
    os.environ.update(env)
    import django

    django.setup()


def prepare(n_workers: int):
    """One dataset, one batch of 20 clips, n assignments (distinct simulated workers). Returns [(uuid, token)]."""
    from django.core.management import call_command

    from catalog.models import Clip, Dataset
    from crowd.services.assignments import assignment_start, hit_token
    from crowd.services.batches import batches_create

    call_command("migrate", "--noinput", verbosity=0)
    call_command("load_taxonomy", verbosity=0)
    name = f"bench-{int(time.time())}"
    ds = Dataset.objects.create(name=name, annotations_per_clip=n_workers + 1, gold_per_batch=0)
    Clip.objects.bulk_create(
        [Clip(dataset=ds, video_id=f"b{i:02d}", media_url=f"https://example.org/{i}.mp4") for i in range(20)]
    )
    (batch,) = batches_create(ds, proposals={f"b{i:02d}": [] for i in range(20)})
    out = []
    for w in range(n_workers):
        a = assignment_start(batch, backend="simulated", worker_external_id=f"{name}-w{w}")
        out.append((str(a.uuid), hit_token(a)))
    vacuum()
    return ds, batch, out


def vacuum() -> None:
    """VACUUM ANALYZE the tables the saves read and write, on PostgreSQL: every run starts from the same state, as
    autovacuum keeps a deployment. Without it (a server with autovacuum off, as this project's CI machine runs) the
    dead row versions of earlier runs' upserts pile up and the database's CPU per save grew run after run (0.36 ->
    0.76 ms over ten runs), for Django and the floor alike."""
    from django.db import connection

    from crowd.models import Assignment, ClipAnswer

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:  # autocommit: VACUUM cannot run inside a transaction
            cursor.execute(f"VACUUM (ANALYZE) {Assignment._meta.db_table}, {ClipAnswer._meta.db_table}")


def payload(classes: list[str], worker: int, k: int) -> dict:
    labels = [
        {"name": classes[(worker * 7 + k * 3 + j) % len(classes)], "audible": j % 2 == 0, "visible": j != 1}
        for j in range(3)
    ]
    return {
        "background_music": k % 2 == 0,
        "voice_over": False,
        "static_image": None,
        "played": True,
        "watch_seconds": float(k + 1),
        "labels": labels,
        "comment": "",
    }


async def one_worker(
    port, uuid, token, worker, saves, classes, vids, latencies, later, errors, sent, start_evt, interval
):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await start_evt.wait()
    loop = asyncio.get_running_loop()
    phase = random.Random(worker).uniform(0, interval)
    t_start = loop.time() + phase
    try:
        for k in range(saves):
            if interval:  # an annotator who saves every `interval` seconds (not faster than the server answers)
                delay = t_start + k * interval - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            vid = vids[k % len(vids)]
            body = json.dumps(payload(classes, worker, k)).encode()
            req = (
                f"PUT /api/hit/assignments/{uuid}/answers/{vid} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Type: application/json\r\nX-HIT-Token: {token}\r\nContent-Length: {len(body)}\r\n"
                f"Connection: keep-alive\r\n\r\n"
            ).encode() + body
            t0 = time.perf_counter()
            writer.write(req)
            await writer.drain()
            status_line = await reader.readline()
            length, close = 0, False
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                key, _, value = line.decode().partition(":")
                if key.lower() == "content-length":
                    length = int(value)
                elif key.lower() == "connection" and value.strip().lower() == "close":
                    close = True
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - t0)
            if k:  # not the connection's first save (a new connection waits for a server thread: see the report)
                later.append(latencies[-1])
            code = status_line.split(b" ")[1:2]
            if code != [b"200"]:
                errors.append(status_line.decode().strip())
            else:
                sent[(uuid, vid)] = float(k + 1)
            if close:
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
    finally:
        writer.close()


async def run_level(port, assignments, saves, classes, vids, interval):
    latencies, later, errors, sent = [], [], [], {}
    start_evt = asyncio.Event()
    tasks = [
        asyncio.create_task(
            one_worker(port, u, t, i, saves, classes, vids, latencies, later, errors, sent, start_evt, interval)
        )
        for i, (u, t) in enumerate(assignments)
    ]
    await asyncio.sleep(0.5)  # connections open
    t0 = time.perf_counter()
    start_evt.set()
    await asyncio.gather(*tasks)
    return time.perf_counter() - t0, latencies, later, errors, sent


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of one process on this machine; 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bare_sql_env() -> dict:
    """The autosave's two statements, crowd.services.assignments' own text, for bench/bare_saves_app.py (the floor
    runs exactly the SQL the service runs)."""
    from django.db import connection

    from crowd.services.assignments import _READ_SQL, _save_sql

    return {"BARE_READ_SQL": _READ_SQL, "BARE_SAVE_SQL": _save_sql(connection.vendor, True)}


def status_mib(field: str) -> float:
    """A memory figure of this process in MiB from /proc/self/status: "VmRSS" (resident now) or "VmHWM" (its peak;
    unlike ru_maxrss not inherited from the parent); NaN where there is no such file."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def reset_peak() -> None:
    """Start VmHWM again from the current resident size (Linux: /proc/self/clear_refs), so that a peak measured
    after it is the work's, not that of building the benchmark's own inputs."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def backend_cpu(connection) -> float | None:
    """CPU seconds used so far by a Django connection's PostgreSQL backend (a server on this machine); None on
    other databases."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        return proc_cpu(cur.fetchone()[0])


def server_pids(master: int) -> list[int]:
    """gunicorn's master and its workers."""
    pids = [master]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == master:
                pids.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return pids


def database_pids() -> list[int]:
    """The PostgreSQL backends connected to the bench database (the server's connections), when on this machine."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return [pid for (pid,) in cursor.fetchall()]


class CpuMeter:
    """CPU seconds spent during a level by the server (gunicorn's processes), the database (the backends that were
    connected at both ends of the level: a connection opened or closed in between is not counted) and this
    process (the load generator)."""

    def __init__(self, master: int):
        self.master = master

    def __enter__(self):
        self.server = {pid: proc_cpu(pid) for pid in server_pids(self.master)}
        self.db = {pid: proc_cpu(pid) for pid in database_pids()}
        self.client = time.process_time()
        return self

    def __exit__(self, *exc):
        self.client = time.process_time() - self.client
        self.server = sum(proc_cpu(pid) - t for pid, t in self.server.items())
        now = set(database_pids())
        self.db = sum(proc_cpu(pid) - t for pid, t in self.db.items() if pid in now)
        return False


def verify(sent: dict) -> tuple[int, int]:
    from crowd.models import ClipAnswer

    uuids = {u for u, _ in sent}
    rows = {
        (str(u), v): w
        for u, v, w in ClipAnswer.objects.filter(assignment__uuid__in=uuids).values_list(
            "assignment__uuid", "clip__video_id", "watch_seconds"
        )
    }
    missing = sum(1 for key, value in sent.items() if rows.get(key) != value)
    return len(rows), missing


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default=os.environ.get("DATABASE_URL", DEFAULT_DB))
    ap.add_argument("--levels", default="50,200,500")
    ap.add_argument("--saves", type=int, default=10, help="saves per simulated worker per level")
    ap.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    ap.add_argument("--threads", type=int, default=8, help="threads per gunicorn worker")
    ap.add_argument(
        "--app",
        choices=["django", "bare"],
        default="django",
        help="bare: the same locking read + upsert from a minimal WSGI app (bench/bare_saves_app.py), "
        "the floor for the Django view",
    )
    ap.add_argument(
        "--cache-url",
        default="",
        help="a Redis URL for the rate limits' counters, as deployed (default: each server process's memory)",
    )
    ap.add_argument(
        "--interval",
        default="0.6,0",
        help="seconds between one annotator's saves, one pass per value (0: back to back, saturating)",
    )
    args = ap.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    ensure_database(args.database_url)
    env = bench_env(args.database_url, args.cache_url)
    setup_django(env)
    from catalog.selectors.taxonomy import class_names

    intervals = [float(x) for x in args.interval.split(",")]
    warm = args.workers * args.threads * 2
    ds, batch, all_assignments = prepare(sum(levels) * len(intervals) + warm)
    classes = class_names()
    vids = [f"b{i:02d}" for i in range(20)]
    port = free_port()
    if args.app == "bare":
        env.update(bare_sql_env())
        target = ["--pythonpath", str(ROOT / "bench"), "bare_saves_app:application"]
    else:
        target = ["config.wsgi"]
    gunicorn = [
        str(Path(sys.executable).parent / "gunicorn"),
        *target,
        "-c",  # the deployment's settings (preload, gc.freeze before fork), with the bench's below taking precedence
        str(ROOT / "config" / "gunicorn.py"),
        "-w",
        str(args.workers),
        "-k",
        "gthread",
        "--threads",
        str(args.threads),
        "-b",
        f"127.0.0.1:{port}",
        "--worker-connections",
        "2000",
        "--keep-alive",
        "30",
        "--backlog",
        "2048",
        "--log-level",
        "warning",
    ]
    server = subprocess.Popen(gunicorn, cwd=ROOT, env={**os.environ, **env})
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.3)
        time.sleep(2)  # let every worker boot
        print(
            f"{args.app}: gunicorn -w {args.workers} -k gthread --threads {args.threads} on 127.0.0.1:{port}; "
            f"database {args.database_url.split('://')[0]}; {os.cpu_count()} CPUs; {args.saves} saves/worker"
        )
        # warm-up (not reported): every server thread opens its database connection and loads the class list
        asyncio.run(run_level(port, all_assignments[-warm:], 5, classes, vids, 0))
        offset, ok = 0, True
        for interval, n in [(i, n) for i in intervals for n in levels]:
            assignments = all_assignments[offset : offset + n]
            offset += n
            with CpuMeter(server.pid) as cpu:
                wall, lat, later, errors, sent = asyncio.run(
                    run_level(port, assignments, args.saves, classes, vids, interval)
                )
            p50, p99 = statistics.median(lat) * 1000, percentile(lat, 0.99)
            rows, missing = verify(sent)
            total = n * args.saves
            good = total - len(errors) == len(lat) - len(errors)
            ok &= not errors and missing == 0 and good
            mode = f"one save per {interval:g} s each" if interval else "back to back"
            print(
                f"{n:4d} concurrent workers ({mode}): {total} saves in {wall:.2f} s = {total / wall:7.1f} saves/s; "
                f"p50 {p50:6.1f} ms, p99 {p99:6.1f} ms; errors {len(errors)}; "
                f"rows in db {rows} (pairs), not matching last save: {missing}"
            )
            if later:
                # gunicorn's gthread worker hands a new connection to a thread that waits up to 5 s for its first
                # request: connections opened before their first save hold threads in turn (docs/benchmarks.md,
                # "Autosave, fifth pass"), so the first saves' tail is the server's cold start, not its steady state
                print(f"     p99 of the saves after each connection's first: {percentile(later, 0.99):6.1f} ms")
            print(
                f"     CPU per save: server {1000 * cpu.server / total:.2f} ms, "
                f"database {1000 * cpu.db / total:.2f} ms, load generator {1000 * cpu.client / total:.2f} ms; "
                f"load average {os.getloadavg()[0]:.1f}"
            )
            if errors:
                print("   first errors:", errors[:3])
        print("all saves verified in the database" if ok else "SOME SAVES FAILED OR ARE MISSING")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
