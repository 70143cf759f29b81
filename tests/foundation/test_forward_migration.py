"""An existing PostgreSQL database made before `annotation` was split into catalog / crowd / labels / reports migrates
forward with the new code: same rows, same release exports byte for byte, admin history still points at its objects.

The database is `tests/data/premove_pg.sql.gz`, a `pg_dump --inserts` of a database built on commit 294a293 (the
last commit before the split); tests/data/README.md lists the commands that built it and the two exports that old
code wrote from it (`premove_v1.csv`, `premove_v2-ds.jsonl`).
"""

from __future__ import annotations

import gzip
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"

pytestmark = pytest.mark.skipif(
    "postgresql" not in settings.DATABASES["default"]["ENGINE"],
    reason="the forward-migration check loads a PostgreSQL dump (set DATABASE_URL to a PostgreSQL server)",
)

# ORM counts after the move, compared with the raw table counts before it.
COUNT_SCRIPT = """
import json
from django.apps import apps
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
out = {"counts": {}}
for label in ("catalog", "crowd", "labels", "reports"):
    for model in apps.get_app_config(label).get_models():
        out["counts"][model._meta.db_table] = model.objects.count()
        out["counts"][f"{label}.{model.__name__}"] = model._meta.db_table
        for field in model._meta.many_to_many:
            through = field.remote_field.through
            out["counts"][through._meta.db_table] = through.objects.count()
call_command("export_labels", release="v1", dataset="demo", out=OUT + "/v1.csv")
call_command("export_labels", release="v2-ds", dataset="demo", format="jsonl", out=OUT + "/v2-ds.jsonl")
entry = LogEntry.objects.get(change_message="premove edit")
obj = entry.get_edited_object()
out["log_entry"] = [obj._meta.label, str(obj)]
out["annotation_content_types"] = ContentType.objects.filter(app_label="annotation").count()
print("RESULT " + json.dumps(out))
"""


def _connect(dbname: str):
    import psycopg

    db = settings.DATABASES["default"]
    return psycopg.connect(
        dbname=dbname,
        user=db.get("USER") or None,
        password=db.get("PASSWORD") or None,
        host=db.get("HOST") or None,
        port=db.get("PORT") or None,
    )


@pytest.fixture
def premove_database():
    """A new database holding the pre-split dump; dropped afterwards. Yields (url, raw table counts)."""
    db = settings.DATABASES["default"]
    name = f"avcrowd_premove_{os.getpid()}_{secrets.token_hex(4)}"
    admin = _connect("postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        conn = _connect(name)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(gzip.decompress((DATA / "premove_pg.sql.gz").read_bytes()).decode("utf-8"))
            cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'annotation_%'")
            tables = [r[0] for r in cur.fetchall()]
            counts = {}
            for table in tables:
                cur.execute(f'SELECT count(*) FROM public."{table}"')
                counts[table] = cur.fetchone()[0]
        conn.close()
        auth = db.get("USER") or ""
        if db.get("PASSWORD"):
            auth += f":{db['PASSWORD']}"
        url = f"postgres://{auth}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{name}"
        yield url, counts
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _manage(url: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_"))}
    env.update(DATABASE_URL=url, AVCROWD_DEV="1", DJANGO_SETTINGS_MODULE="config.settings")
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def test_a_database_from_before_the_split_migrates_forward_without_losing_anything(premove_database, tmp_path):
    url, before = premove_database
    assert before["annotation_clipanswer"] > 50 and before["annotation_releaselabel"] > 40  # the dump has data

    migrated = _manage(url, "migrate", "--noinput")
    assert migrated.returncode == 0, migrated.stderr
    assert "annotation.0004_moved_to_domain_apps" in migrated.stdout

    script = f"OUT = {str(tmp_path)!r}\n" + COUNT_SCRIPT
    checked = _manage(url, "shell", "-c", script)
    assert checked.returncode == 0, checked.stderr
    result = json.loads(checked.stdout.split("RESULT ", 1)[1])

    after = {table: n for table, n in result["counts"].items() if isinstance(n, int)}
    # every table the old app had is a table of one of the new apps, with the same rows; tables of models added
    # after the split (e.g. crowd.WorkerStatusLog) start empty
    assert {table: after.get(table) for table in before} == before
    assert {table: n for table, n in after.items() if table not in before and n} == {}
    assert result["counts"]["crowd.Assignment"] == "annotation_assignment"
    assert result["counts"]["catalog.GoldLabel"] == "annotation_goldlabel"

    # exports written by the new code equal the files the old code wrote, byte for byte
    assert (tmp_path / "v1.csv").read_bytes() == (DATA / "premove_v1.csv").read_bytes()
    assert (tmp_path / "v2-ds.jsonl").read_bytes() == (DATA / "premove_v2-ds.jsonl").read_bytes()

    # the admin's history follows the moved models (content types renamed, not recreated)
    assert result["log_entry"][0] == "catalog.Clip"
    assert result["annotation_content_types"] == 0
