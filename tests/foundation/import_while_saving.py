"""Run as a script by test_bulk_import.py: on a fresh SQLite file named by DATABASE_URL=sqlite:///..., a worker
autosaves through the HIT API (Django's test client: session, then PUT answers) while `manage.py import_clips`
loads a large CSV in another process. Prints one JSON line: the saves made while the import ran and their outcome."""

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import django

ROOT = Path(__file__).resolve().parents[2]


def main(n_clips: int, workdir: Path) -> dict:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings_test")
    django.setup()
    logging.disable(logging.INFO)  # one request log line per save would drown the JSON
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from catalog.models import Clip, Dataset
    from catalog.services.taxonomy import taxonomy_load
    from crowd.services.batches import batches_create

    call_command("migrate", verbosity=0)
    taxonomy_load()
    ds = Dataset.objects.create(name="live", batch_size=4, gold_per_batch=0, annotations_per_clip=1)
    for i in range(4):
        Clip.objects.create(dataset=ds, video_id=f"live{i}", media_url=f"https://cdn.example.org/live{i}.mp4")
    batch = batches_create(ds)[0]
    client = Client(raise_request_exception=False)  # a "database is locked" save is a 500, recorded
    session = client.get(f"/api/hit/{batch.uuid}/session?assignmentId=A1&workerId=W1&hitId=H1").json()
    url = f"/api/hit/assignments/{session['assignment']}/answers/"
    headers = {"X-HIT-Token": session["token"]}
    journal = connection.cursor().execute("PRAGMA journal_mode").fetchone()[0]
    connection.close()

    csv_path = workdir / "big.csv"
    with csv_path.open("w") as fh:
        fh.write("video_id,url,original_label\n")
        for i in range(n_clips):
            fh.write(f"big{i:07d},https://cdn.example.org/big{i}.mp4,dog barking\n")
    log = workdir / "import.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "import_clips", str(csv_path), "--dataset", "big"],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        saves = []
        i = 0
        while proc.poll() is None:
            vid = f"live{i % 4}"
            body = {"background_music": bool(i % 2), "voice_over": False, "static_image": False, "labels": []}
            t0 = time.perf_counter()
            response = client.put(url + vid, data=json.dumps(body), content_type="application/json", headers=headers)
            seconds = time.perf_counter() - t0
            saves.append({"status": response.status_code, "seconds": round(seconds, 4), "during": proc.poll() is None})
            i += 1
            time.sleep(0.01)
        rc = proc.wait()
    imported = Clip.objects.filter(dataset__name="big").count()
    return {
        "journal_mode": journal,
        "import_rc": rc,
        "import_output": log.read_text()[-2000:],
        "imported": imported,
        "saves": saves,
    }


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]), Path(sys.argv[2]))))
