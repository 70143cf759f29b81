"""A real Celery worker prepares a release export through Redis (CI: PostgreSQL + Redis)."""

import time

import pytest

from catalog.models import Dataset
from labels.models import ReleaseExport
from labels.services.export import export_chunks
from labels.services.imports import release_import
from labels.tasks import release_export_task

pytestmark = pytest.mark.worker

CSV = (
    "video_id,label,modality,background_music,static_image,voice_over\n"
    "b,dog barking,A,False,False,True\n"
    'a,"bird chirping, tweeting",AV,True,False,False\n'
)


def test_a_real_worker_prepares_an_export_with_progress(celery_worker_process, taxonomy, tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text(CSV)
    release = release_import(Dataset.objects.create(name="worker-rel"), "pub", path)
    job = ReleaseExport.objects.create(
        release=release, format="vggsounder-csv", include_background_music=True, rows_total=2
    )
    result = release_export_task.apply_async(args=[job.pk], queue=celery_worker_process)
    assert result.get(timeout=60)["status"] == "done"
    deadline = time.time() + 10
    while time.time() < deadline:
        job.refresh_from_db()
        if job.status == "done":
            break
        time.sleep(0.2)
    assert job.status == "done" and job.rows_done == 2 and job.progress == 1.0
    with job.file.open("rb") as fh:
        assert fh.read() == b"".join(export_chunks(release, "vggsounder-csv", include_background_music=True))
