"""Benchmark (not a test): the instructions one autosave costs in this process, counted by valgrind's callgrind.

    .venv/bin/python bench/callgrind_saves.py [--app django|bare] [--saves 300]
                                              [--database-url postgres://postgres@127.0.0.1:5432/avcrowd_bench]

Wall and CPU time move with whatever else the host runs (on a VM with stolen CPU, by ±15 % from run to run);
instruction counts do not: the same tree gives the same count within 0.1 %. The set-up is bench/profile_saves.py's
(the bench database, one batch, simulated workers bound in-process); the saves call config.wsgi.application (or
bench/bare_saves_app.py's floor) directly. This script runs itself under `valgrind --tool=callgrind`, zeroes the
counters once the process has warmed up (connection, prepared statements, caches), runs the saves, dumps, and
prints the instructions per save (the PostgreSQL server's work is in its own process and not counted).
Takes about two minutes (valgrind runs Python some 50 times slower). Needs Debian's valgrind.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def child(app_name: str, n: int, database_url: str, signal_dir: Path) -> None:
    """Under valgrind: set up, warm up, tell the parent, wait for its go, run the saves, tell it they are done."""
    from bench_saves import bare_sql_env, bench_env, payload, prepare, setup_django  # noqa: PLC0415
    from profile_saves import environ_for  # noqa: PLC0415

    setup_django(bench_env(database_url))
    from catalog.selectors.taxonomy import class_names  # noqa: PLC0415

    _, _, assignments = prepare(20)
    classes, vids = class_names(), [f"b{i:02d}" for i in range(20)]
    os.environ.update(bare_sql_env())
    import bare_saves_app  # noqa: PLC0415

    from config.wsgi import application  # noqa: PLC0415

    app = {"django": application, "bare": bare_saves_app.application}[app_name]
    items = [
        (uuid, token, vids[k % len(vids)], json.dumps(payload(classes, k % len(assignments), k)).encode())
        for k in range(n)
        for uuid, token in [assignments[k % len(assignments)]]
    ]
    statuses: dict = {}

    def start_response(status, headers, exc_info=None):
        statuses[status] = statuses.get(status, 0) + 1

    def run(batch):
        for uuid, token, vid, body in batch:
            result = app(environ_for(uuid, token, vid, body), start_response)
            b"".join(result)
            if hasattr(result, "close"):
                result.close()

    run(items[:200])
    run(items[:200])  # prepared statements, cached class list and batch contents, every code path warm
    statuses.clear()
    (signal_dir / "ready").write_text("")
    while not (signal_dir / "go").exists():
        time.sleep(0.05)
    run(items)
    (signal_dir / "done").write_text(json.dumps(statuses))
    while not (signal_dir / "dumped").exists():
        time.sleep(0.05)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--app", choices=["django", "bare"], default="django")
    ap.add_argument("--saves", type=int, default=300)
    ap.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""))
    ap.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not args.database_url:
        from bench_saves import DEFAULT_DB  # noqa: PLC0415

        args.database_url = DEFAULT_DB
    if args.child:
        child(args.app, args.saves, args.database_url, Path(args.child))
        return
    if not shutil.which("valgrind"):
        sys.exit("callgrind_saves: valgrind is not installed (apt-get install valgrind)")
    from bench_saves import ensure_database  # noqa: PLC0415

    ensure_database(args.database_url)
    with tempfile.TemporaryDirectory() as tmp:
        signal_dir = Path(tmp)
        out = signal_dir / "callgrind.out"
        cmd = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            __file__,
            *("--app", args.app, "--saves", str(args.saves), "--database-url", args.database_url),
            *("--child", str(signal_dir)),
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        while not (signal_dir / "ready").exists():
            if proc.poll() is not None:
                sys.exit(f"callgrind_saves: the measured process ended early:\n{proc.stderr.read()[-3000:]}")
            time.sleep(0.5)
        subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True, capture_output=True)
        (signal_dir / "go").write_text("")
        while not (signal_dir / "done").exists():
            time.sleep(0.5)
        subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True, capture_output=True)
        statuses = json.loads((signal_dir / "done").read_text())
        (signal_dir / "dumped").write_text("")
        proc.wait()
        dumps = sorted(signal_dir.glob("callgrind.out.*"), key=lambda p: p.stat().st_mtime)
        totals = [line for line in dumps[0].read_text().splitlines() if line.startswith(("summary:", "totals:"))]
        instructions = int(totals[0].split()[1])
    print(
        f"{args.app}: {args.saves} saves {statuses}; {instructions / args.saves:,.0f} instructions per save "
        f"in this process (callgrind; the database server's work not counted)"
    )


if __name__ == "__main__":
    main()
