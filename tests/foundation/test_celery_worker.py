"""A real Celery worker process, started by the test, executes a task through Redis against PostgreSQL."""

import pytest

from catalog.models import Clip, Dataset
from catalog.tasks import clip_probe_task

pytestmark = pytest.mark.worker


def test_a_real_worker_probes_a_clip_through_redis(celery_worker_process, taxonomy, clip_factory):
    dataset = Dataset.objects.create(name="worker")
    clip = Clip.objects.create(
        dataset=dataset,
        video_id="w1",
        media_url=str(clip_factory("worker", seconds=2.0)),
        duration=None,
        has_audio=False,
        has_video=False,
    )
    result = clip_probe_task.apply_async(args=[clip.pk], queue=celery_worker_process)
    out = result.get(timeout=60)
    assert out["probed"] is True
    clip.refresh_from_db()
    assert clip.has_audio and clip.has_video and abs(clip.duration - 2.0) < 0.2
