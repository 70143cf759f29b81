"""Long work never looks stuck: a task that cannot be queued fails its Operation at once with the reason; a
running Operation writes heartbeats; one whose worker or command died is failed and can be retried; the periodic
sync's lock ends with its Operation."""

from __future__ import annotations

import datetime as dt
import shutil
import socket
import subprocess
import time

import pytest
import redis
from django.contrib.auth import get_user_model
from django.utils import timezone

from catalog.models import Clip, Dataset, Operation
from catalog.services.operations import Progress, operation_heartbeat, operations_fail_stale
from crowd.models import Assignment, Batch, BatchItem, ClipAnswer, Worker
from crowd.tasks import marketplace_sync_start, marketplace_sync_task
from labels.models import Release
from labels.services.create import release_create_request
from labels.tasks import release_create_start, release_create_task
from tests.celery_helpers import broker_at


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def private_redis(tmp_path):
    """A Redis server of the test's own, which the test can stop and start again: (url, start, stop)."""
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    port = _free_port()
    proc = {}

    def start():
        proc["p"] = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(tmp_path),
            ],
            stdout=subprocess.DEVNULL,
        )
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop():
        proc["p"].terminate()
        proc["p"].wait(timeout=10)

    start()
    yield f"redis://127.0.0.1:{port}/0", start, stop
    if proc["p"].poll() is None:
        stop()


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_user("ops", password="pw", is_staff=True, is_superuser=True)


@pytest.fixture
def approved_dataset(taxonomy):
    """A dataset with one clip annotated by one approved worker: enough for a release."""
    ds = Dataset.objects.create(name="longwork", annotations_per_clip=1)
    clip = Clip.objects.create(dataset=ds, video_id="c1")
    batch = Batch.objects.create(dataset=ds)
    BatchItem.objects.create(batch=batch, clip=clip, position=0, proposals=["dog barking"])
    worker = Worker.objects.create(backend="simulated", external_id="w1", mean_catch_f1=0.9)
    a = Assignment.objects.create(batch=batch, worker=worker, backend="simulated", status=Assignment.APPROVED)
    ClipAnswer.objects.create(
        assignment=a, clip=clip, played=True, labels=[{"name": "dog barking", "audible": True, "visible": False}]
    )
    return ds


def test_with_the_broker_down_the_sync_and_release_apis_answer_at_once_and_the_operation_says_why(
    client, staff, approved_dataset, django_capture_on_commit_callbacks
):
    client.force_login(staff)
    client.get("/healthz")  # the first request loads the URL map (seconds): not what is measured here
    elapsed = {}
    with broker_at(f"redis://127.0.0.1:{_free_port()}/0"):  # nothing listens there
        with django_capture_on_commit_callbacks(execute=True):
            started = time.monotonic()
            sync = client.post("/api/marketplace/sync/", {"dataset": "longwork"}, content_type="application/json")
            elapsed["sync"] = time.monotonic() - started
        with django_capture_on_commit_callbacks(execute=True):
            started = time.monotonic()
            release = client.post(
                "/api/releases/",
                {"dataset": "longwork", "name": "v1", "background": True},
                content_type="application/json",
            )
            elapsed["release"] = time.monotonic() - started
    assert max(elapsed.values()) < 5, elapsed
    assert sync.status_code == 202, sync.content
    assert release.status_code == 202, release.content
    for op_id in (sync.json()["operation"], release.json()["operation"]):
        op = Operation.objects.get(pk=op_id)
        assert op.status == Operation.FAILED and op.finished_at is not None
        assert op.message.startswith("Could not queue the work: the task broker did not answer (OperationalError")
        assert "Nothing was done" in op.message
    assert not Release.objects.filter(name="v1").exists()
    page = client.get(f"/ops/operations/{sync.json()['operation']}/").content.decode()
    assert "Could not queue the work" in page and 'id="op-retry"' in page


def test_the_broker_back_after_an_outage_takes_tasks_again_without_a_restart(
    staff, approved_dataset, private_redis, django_capture_on_commit_callbacks
):
    url, start, stop = private_redis
    with broker_at(url):
        with django_capture_on_commit_callbacks(execute=True):
            first = marketplace_sync_start(approved_dataset, staff)
        stop()
        with django_capture_on_commit_callbacks(execute=True):
            second = marketplace_sync_start(approved_dataset, staff)
        start()
        with django_capture_on_commit_callbacks(execute=True):
            third = marketplace_sync_start(approved_dataset, staff)
    for op in (first, second, third):
        op.refresh_from_db()
    assert first.status == third.status == Operation.RUNNING, second.message  # queued, waiting for a worker
    assert second.status == Operation.FAILED and "Could not queue" in second.message
    # this Redis keeps nothing across a restart, so only the task sent after it is there (compose's Redis keeps an
    # append-only file: there the first one would be too)
    assert redis.Redis.from_url(url).llen("default") == 1


def test_a_running_operation_writes_heartbeats_from_a_background_thread(transactional_db, settings):
    settings.OPERATION_HEARTBEAT_SECONDS = 0.2
    op = Operation.objects.create(kind=Operation.RELEASE)
    with operation_heartbeat(op.pk):
        op.refresh_from_db()
        first = op.heartbeat_at
        assert first is not None  # at once: the worker has picked it up
        time.sleep(0.7)
        op.refresh_from_db()
        assert op.heartbeat_at > first
    op.refresh_from_db()  # the last beat may land between the check above and the end of the block
    last = op.heartbeat_at
    time.sleep(0.5)
    op.refresh_from_db()
    assert op.heartbeat_at == last, "the heartbeat went on after the work ended"


def test_an_operation_whose_worker_died_shows_failed_with_a_retry_that_does_the_work(
    client, staff, approved_dataset, django_capture_on_commit_callbacks
):
    client.force_login(staff)
    # a release queued (as operation_queue records it), taken by a worker that then died: last heartbeat 10 min ago
    op = release_create_request(approved_dataset, "v1", user=staff)
    op.queued = {"task": release_create_task.name, "kwargs": {}, "queue": None, "summary": dict(op.summary)}
    op.heartbeat_at = timezone.now() - dt.timedelta(minutes=10)
    op.save()
    page = client.get(f"/ops/operations/{op.pk}/").content.decode()
    op.refresh_from_db()
    assert op.status == Operation.FAILED
    assert op.message.startswith("Stopped: no sign of life since")
    assert "Retry it from its page." in op.message
    assert 'id="op-retry"' in page

    with django_capture_on_commit_callbacks(execute=True):
        r = client.post(f"/ops/operations/{op.pk}/retry/")
    new = Operation.objects.get(retry_of=op)
    assert r.status_code == 302 and r["Location"] == f"/ops/operations/{new.pk}/"
    new.refresh_from_db()
    assert new.status == Operation.DONE, new.message  # tasks run in-process here
    assert Release.objects.filter(dataset=approved_dataset, name="v1").count() == 1
    page = client.get(f"/ops/operations/{op.pk}/").content.decode()
    assert "Retried as" in page and 'id="op-retry"' not in page
    again = client.post(f"/ops/operations/{op.pk}/retry/", follow=True)
    assert f"was retried already as operation {new.pk}" in again.content.decode()


def test_a_queued_operation_no_worker_took_and_a_killed_command_are_failed_with_what_happened(db, settings):
    queued = Operation.objects.create(kind=Operation.PUBLISH, queued={"task": "crowd.tasks.batches_publish_task"})
    Operation.objects.filter(pk=queued.pk).update(started_at=timezone.now() - dt.timedelta(hours=2))
    command = Progress("sync", echo=None).op  # a `sync_marketplace` run that was killed after its first step
    Operation.objects.filter(pk=command.pk).update(heartbeat_at=timezone.now() - dt.timedelta(minutes=6))
    fresh = Progress("sync").op  # one that is alive
    assert operations_fail_stale() == 2
    queued.refresh_from_db(), command.refresh_from_db(), fresh.refresh_from_db()
    assert queued.status == command.status == Operation.FAILED and fresh.status == Operation.RUNNING
    assert queued.message.startswith("Never started: no worker picked it up within 60 min")
    assert "is a Celery worker running for queue 'default'?" in queued.message
    assert command.message.startswith("Stopped: no sign of life since")
    assert command.message.endswith("Run it again (it was started by a command or by the schedule).")
    assert not command.can_retry and queued.can_retry


def test_the_periodic_sync_lock_ends_with_its_operation(db, settings):
    """A sync that is alive keeps the periodic one from starting; one whose process died does not, however
    recent (the lock used to be 15 minutes from its start, whatever became of it)."""
    alive = Progress("sync").op
    Operation.objects.filter(pk=alive.pk).update(started_at=timezone.now() - dt.timedelta(minutes=40))
    assert marketplace_sync_task.apply().get() == {"skipped": "another sync is still running"}

    Operation.objects.filter(pk=alive.pk).update(heartbeat_at=timezone.now() - dt.timedelta(minutes=6))
    result = marketplace_sync_task.apply().get()
    assert "skipped" not in result
    alive.refresh_from_db()
    assert alive.status == Operation.FAILED
    assert Operation.objects.filter(kind=Operation.SYNC, status=Operation.DONE).count() == 1


def test_a_late_delivery_of_a_task_whose_operation_failed_does_nothing(
    db, approved_dataset, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        op = release_create_start(approved_dataset, "v1")  # in-process: done
    op.refresh_from_db()
    assert op.status == Operation.DONE
    stale = Operation.objects.create(kind=Operation.SYNC, status=Operation.FAILED, message="Stopped: ...")
    assert marketplace_sync_task.apply(kwargs={"operation_id": stale.pk}).get() == {
        "skipped": f"operation {stale.pk} is not running (finished, failed or deleted): nothing to do"
    }
