"""Large clip imports: written in short bulk transactions (COPY on PostgreSQL, chunked executemany on SQLite), so
workers' autosaves keep succeeding while one runs; a refused or failed import still changes nothing."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from catalog.errors import ImportFailed
from catalog.models import Clip, Dataset
from catalog.services import bulk
from catalog.services.clips import ClipSpec, clips_import_into, clips_validate, clips_write
from config.env import database_from_env

ROOT = Path(__file__).resolve().parents[2]


def _specs(n, prefix="c", label="dog barking"):
    return [
        ClipSpec(f"{prefix}{i:05d}", f"https://cdn.example.org/{prefix}{i}.mp4", [label], f"row {i}") for i in range(n)
    ]


def test_sqlite_url_gets_the_server_options(monkeypatch, tmp_path):
    """DATABASE_URL=sqlite:///... is as safe for concurrent workers as the default file: WAL, BEGIN IMMEDIATE and a
    busy timeout (without them an autosave during an import fails at once with "database is locked")."""
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/named.sqlite3")
    named = database_from_env(tmp_path / "default.sqlite3")
    monkeypatch.delenv("DATABASE_URL")
    default = database_from_env(tmp_path / "default.sqlite3")
    assert named["NAME"] == str(tmp_path / "named.sqlite3")
    for config in (named, default):
        assert config["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
        assert config["OPTIONS"]["timeout"] >= 10
        assert "journal_mode=WAL" in config["OPTIONS"]["init_command"]


@pytest.mark.django_db(transaction=True)
def test_large_import_is_written_in_chunks_with_labels(taxonomy, monkeypatch, tmp_path):
    """More clips than one chunk (and than SQLite's variable limit per statement) land with their labels, in
    several short transactions rather than one."""
    monkeypatch.setitem(bulk.CHUNK_ROWS, "sqlite", 700)
    monkeypatch.setitem(bulk.CHUNK_ROWS, "postgresql", 700)
    commits = []
    real_insert = bulk.bulk_insert

    def counting(model, columns, rows):
        n = real_insert(model, columns, rows)
        if model is Clip:
            commits.append(n)
        return n

    monkeypatch.setattr(bulk, "bulk_insert", counting)
    path = tmp_path / "clips.csv"
    path.write_text(
        "video_id,url,original_label\n"
        + "".join(f"v{i:05d},https://cdn.example.org/v{i}.mp4,dog barking|cat meowing\n" for i in range(2500))
    )
    call_command("import_clips", str(path), "--dataset", "chunky")
    ds = Dataset.objects.get(name="chunky")
    assert Clip.objects.filter(dataset=ds).count() == 2500
    assert commits == [700, 700, 700, 400]
    last = Clip.objects.get(dataset=ds, video_id="v02499")
    assert sorted(c.name for c in last.original_labels.all()) == ["cat meowing", "dog barking"]
    assert last.media_url == "https://cdn.example.org/v2499.mp4" and not last.media


@pytest.mark.django_db(transaction=True)
def test_failure_in_a_later_chunk_removes_the_chunks_already_written(taxonomy, monkeypatch):
    """Another import adds clip c01500 between validation and writing: the chunk holding it fails, the chunks
    already committed are removed again and the new dataset is not left behind; the other import's clip stays."""
    monkeypatch.setitem(bulk.CHUNK_ROWS, "sqlite", 500)
    monkeypatch.setitem(bulk.CHUNK_ROWS, "postgresql", 500)
    specs = _specs(2000)
    ds = Dataset.objects.create(name="racing")
    todo, infos = clips_validate(ds, specs, probe_media=False)
    Clip.objects.create(dataset=ds, video_id="c01500", media_url="https://other.example.org/x.mp4")
    with pytest.raises(ImportFailed, match="nothing was imported"):
        clips_write(ds, todo, infos=infos)
    assert list(Clip.objects.filter(dataset=ds).values_list("video_id", "media_url")) == [
        ("c01500", "https://other.example.org/x.mp4")
    ]
    assert not Clip.original_labels.through.objects.filter(clip__dataset=ds).exists()


@pytest.mark.django_db(transaction=True)
def test_refused_import_into_a_new_dataset_leaves_nothing(taxonomy):
    bad = _specs(10) + [ClipSpec("x1", "https://cdn.example.org/x1.mp4", ["no such class"], "row 11")]
    with pytest.raises(ImportFailed, match="nothing was imported"):
        clips_import_into("fresh", bad)
    assert not Dataset.objects.filter(name="fresh").exists()
    dataset, created, n = clips_import_into("fresh", _specs(10))
    assert created and n == 10 and dataset.clips.count() == 10
    with pytest.raises(ImportFailed, match="nothing was imported") as refused:
        clips_import_into("fresh", _specs(12))
    assert "c00000 (already in dataset fresh; --skip-existing imports the others)" in refused.value.details
    assert dataset.clips.count() == 10


@pytest.mark.django_db
def test_import_command_refuses_a_file_with_one_bad_row_among_many(taxonomy, tmp_path):
    path = tmp_path / "clips.csv"
    rows = [f"ok{i},https://cdn.example.org/{i}.mp4,dog barking" for i in range(3000)]
    rows[2100] = "bad id!,https://cdn.example.org/bad.mp4,dog barking"
    path.write_text("video_id,url,original_label\n" + "\n".join(rows) + "\n")
    with pytest.raises(CommandError, match="nothing was imported"):
        call_command("import_clips", str(path), "--dataset", "mostlygood")
    assert not Clip.objects.filter(video_id__startswith="ok").exists()


@pytest.mark.slow
def test_autosaves_keep_succeeding_while_a_large_import_runs_on_sqlite(tmp_path):
    """A worker saves an answer every 10 ms through the HIT API while `manage.py import_clips` loads 40,000 clips
    into the same SQLite file in another process: every save succeeds (before, the import held the write lock for
    its whole length and saves failed with "database is locked")."""
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path}/live.sqlite3",
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "AVCROWD_VAR_DIR": str(tmp_path),
        # one save every 10 ms is far above a real worker's pace: the HIT API's per-assignment throttle is lifted
        "HIT_THROTTLE_WRITE_ASSIGNMENT": "100000/minute",
        "HIT_THROTTLE_WRITE_IP": "100000/minute",
    }
    env.pop("CELERY_BROKER_URL", None)
    env.pop("CELERY_RESULT_BACKEND", None)
    out = subprocess.run(
        [sys.executable, str(ROOT / "tests/foundation/import_while_saving.py"), "40000", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["journal_mode"] == "wal"
    assert result["import_rc"] == 0 and result["imported"] == 40000, result["import_output"]
    during = [s for s in result["saves"] if s["during"]]
    assert len(during) >= 20, "the import ended before the saves could overlap it"
    assert [s for s in result["saves"] if s["status"] != 200] == []


@pytest.mark.django_db(transaction=True)
def test_tables_without_statistics_are_analysed_before_a_large_read(taxonomy):
    """PostgreSQL: a release read right after a bulk load analyses the tables the planner knows nothing about
    (before: a nested-loop plan per chunk over "empty" tables, minutes at 150k clips); fresh ones are left alone."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("planner statistics are PostgreSQL's")
    from crowd.models import ClipAnswer

    table = ClipAnswer._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {table}")
    assert bulk.analyze_if_stale(ClipAnswer) == []
    with connection.cursor() as cursor:
        cursor.execute("SELECT last_analyze FROM pg_stat_user_tables WHERE relname = %s", [table])
        assert cursor.fetchone()[0] is not None
