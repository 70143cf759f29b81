"""Benchmark (not a test): `manage.py import_clips` of a large CSV, and what the workers see meanwhile.

    .venv/bin/python bench/bench_imports.py [--scale 1|10] [--clips N]
        [--db postgres://postgres@127.0.0.1:5432/avcrowd_bench_imports | sqlite]

--scale 1: 15,446 clips (the VGGSounder test set), 10: 154,460. Each run starts from a fresh database
(PostgreSQL: dropped and re-created; SQLite: a new file), migrated, with the taxonomy. The CSV has
video_id,url,original_label rows (https URLs: nothing to probe). Prints the import's wall time and rows/s.
With --saves, a worker autosaves every 10 ms through the HIT API during the import (SQLite shows the lock) and
the saves' count, failures and slowest time are printed (tests/foundation/import_while_saving.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def fresh_database(db: str, workdir: Path) -> str:
    if db == "sqlite":
        return f"sqlite:///{workdir}/bench_imports.sqlite3"
    from urllib.parse import urlparse  # noqa: PLC0415

    import psycopg  # noqa: PLC0415

    u = urlparse(db)
    conn = psycopg.connect(host=u.hostname, port=u.port or 5432, user=u.username or "postgres", dbname="postgres")
    conn.autocommit = True
    name = u.path.lstrip("/")
    conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
    conn.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return db


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=int, choices=[1, 10], default=1)
    ap.add_argument("--clips", type=int, default=None, help="overrides --scale")
    ap.add_argument("--db", default="postgres://postgres@127.0.0.1:5432/avcrowd_bench_imports")
    ap.add_argument("--saves", action="store_true", help="autosave through the HIT API during the import")
    args = ap.parse_args()
    n = args.clips or 15446 * args.scale
    with tempfile.TemporaryDirectory(prefix="bench-imports-") as tmp:
        work = Path(tmp)
        url = fresh_database(args.db, work)
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "AVCROWD_DEV": "1",
            "AVCROWD_VAR_DIR": tmp,
            "LOG_LEVEL": "WARNING",
        }
        if args.saves:
            env["DJANGO_SETTINGS_MODULE"] = "config.settings_test"
            out = subprocess.run(
                [sys.executable, str(ROOT / "tests/foundation/import_while_saving.py"), str(n), tmp],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            res = json.loads(out.stdout.strip().splitlines()[-1])
            during = [s for s in res["saves"] if s["during"]]
            failed = [s for s in res["saves"] if s["status"] != 200]
            secs = sorted(s["seconds"] for s in during) or [0]
            print(
                f"{url.split('@')[-1]}: import of {n} clips rc={res['import_rc']} ({res['imported']} stored); "
                f"{len(during)} autosaves during it, {len(failed)} failed, "
                f"median {secs[len(secs) // 2] * 1000:.1f} ms, "
                f"slowest {secs[-1] * 1000:.0f} ms"
            )
            return
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
        subprocess.run([sys.executable, "manage.py", "load_taxonomy", "-v", "0"], cwd=ROOT, env=env, check=True)
        csv_path = work / "clips.csv"
        with csv_path.open("w") as fh:
            fh.write("video_id,url,original_label\n")
            for i in range(n):
                fh.write(f"vid{i:07d}_000000,https://cdn.example.org/clips/vid{i:07d}.mp4,dog barking\n")
        t0 = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "manage.py", "import_clips", str(csv_path), "--dataset", "bench"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - t0
        print(
            f"{url.split('@')[-1]}: import_clips {n} clips: {wall:.1f} s ({n / wall:,.0f} clips/s), "
            f"rc={out.returncode}: {(out.stdout or out.stderr).strip().splitlines()[-1][:200]}"
        )


if __name__ == "__main__":
    main()
