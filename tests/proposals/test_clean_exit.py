"""compute_predictions on CPU (chunks in-process, decoding in a warm process pool) exits without the
"Exception ignored ... _ExecutorManagerThread" traceback a live process pool used to leave at interpreter exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_compute_predictions_ends_without_a_traceback(transactional_db, taxonomy, clip_factory):
    from django.conf import settings

    from catalog.models import Clip, Dataset

    db = settings.DATABASES["default"]
    if "postgresql" not in db["ENGINE"]:
        pytest.skip("the command runs in a subprocess against the test database: needs DATABASE_URL (PostgreSQL)")
    ds = Dataset.objects.create(name="clean-exit")
    for i in range(2):
        Clip.objects.create(dataset=ds, video_id=f"x{i}", media_url=str(clip_factory(f"x{i}", seed=i)))
    env = {k: v for k, v in os.environ.items() if k != "CELERY_BROKER_URL"}  # in-process chunks
    env.update(
        DATABASE_URL=(
            f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        ),
        DJANGO_SETTINGS_MODULE="config.settings",
        AVCROWD_DEV="1",
        MEDIA_ROOT=str(settings.MEDIA_ROOT),
        AVCROWD_DECODE_POOL="process",
        AVCROWD_DECODE_WORKERS="1",
    )
    out = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "compute_predictions",
            "--dataset",
            ds.name,
            "--checkpoint",
            "exit-tiny",
            "--register",
            "cavmae",
            "",
            "--config",
            '{"preset": "tiny"}',
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert "2/2 clips" in out.stdout and "done" in out.stdout, out.stdout
    assert "decode pool started: ProcessPoolExecutor" in out.stderr  # the warm pool the exit used to trip over
    assert "Exception ignored" not in out.stderr, out.stderr
    assert "Traceback" not in out.stderr, out.stderr
