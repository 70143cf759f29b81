"""The autosave floor for bench/bench_saves.py --app bare: a minimal WSGI app (no Django) that does what the HIT
API's autosave does in SQL — one read of the assignment by uuid, then one statement that locks it and upserts the
answer (the statements are crowd.services.assignments' own, passed in BARE_READ_SQL and BARE_SAVE_SQL), each in
autocommit as the service runs them — with a psycopg connection per thread and the batch's clip ids cached per
process. No token check, no throttle, no payload validation beyond JSON: it is the bound a Django view cannot beat,
not a server to run."""

import json
import os
import threading
from datetime import UTC, datetime

import psycopg

SAVE = os.environ["BARE_SAVE_SQL"]
READ = os.environ["BARE_READ_SQL"]  # id, status, worker_id, batch_id, browser_secret_hash
CLIPS = "SELECT i.batch_id, c.video_id, c.id FROM annotation_batchitem i JOIN annotation_clip c ON c.id = i.clip_id"
_local = threading.local()
_clips: dict = {}


def _conn():
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = _local.conn = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)
    return conn


def _respond(start_response, status, body: dict):
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def application(environ, start_response):
    parts = environ["PATH_INFO"].strip("/").split("/")  # api/hit/assignments/<uuid>/answers/<video id>
    if environ["REQUEST_METHOD"] != "PUT" or len(parts) != 6 or parts[4] != "answers":
        return _respond(start_response, "404 Not Found", {"detail": "not found"})
    uuid, video_id = parts[3], parts[5]
    body = json.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))
    conn = _conn()
    with conn.cursor() as cur:
        row = cur.execute(READ, [uuid]).fetchone()
        if row is None or row[1] != "in_progress":
            return _respond(start_response, "403 Forbidden", {"detail": "not in progress"})
        if not _clips:
            for batch_id, vid, clip_id in cur.execute(CLIPS).fetchall():
                _clips[(batch_id, vid)] = clip_id
        now = datetime.now(UTC)
        cur.execute(
            SAVE,
            [
                _clips[(row[3], video_id)],
                body.get("background_music"),
                body.get("voice_over"),
                body.get("static_image"),
                bool(body.get("played")),
                float(body.get("watch_seconds") or 0),
                json.dumps(body.get("labels") or []),
                body.get("comment") or "",
                bool(body.get("media_failed")),
                now,
                row[0],
                "in_progress",
                row[2],
                row[4],
            ],
        )
        if cur.rowcount != 1:
            return _respond(start_response, "403 Forbidden", {"detail": "changed"})
    return _respond(start_response, "200 OK", {"saved_at": now.isoformat()})
