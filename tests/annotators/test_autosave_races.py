"""An autosave reads the assignment, checks the token, then writes in one statement that locks the assignment and
upserts only if what was checked still holds. Whatever commits in between (a submit, an expiry, a re-binding to
another browser) stops the write: no answer lands on an assignment that is no longer the token holder's to change."""

import threading
import time

import pytest
from django.db import connection, transaction
from django.test import Client

import crowd.services.assignments as svc
from crowd.models import Assignment, ClipAnswer
from tests.annotators.test_hit_api import MTURK, answer_url, put, session
from tests.crowd_helpers import complete_payload


def _labels(taxonomy, k):
    return [{"name": taxonomy[k], "audible": True, "visible": False}]


def _between_read_and_write(monkeypatch, change):
    """Run `change` once, after the save has read and checked the assignment and before it writes."""
    real, done = svc.batch_clip_ids, []

    def clip_ids(batch_id):
        if not done:
            done.append(1)
            change()
        return real(batch_id)

    monkeypatch.setattr(svc, "batch_clip_ids", clip_ids)


def test_a_submit_between_read_and_write_keeps_the_answer_as_it_was(client, batch, taxonomy, monkeypatch):
    started = session(client, batch, **MTURK).json()
    vid = started["clips"][0]["video_id"]
    assert (
        put(client, answer_url(started, vid), complete_payload(_labels(taxonomy, 1)), started["token"]).status_code
        == 200
    )
    _between_read_and_write(monkeypatch, lambda: Assignment.objects.update(status=Assignment.SUBMITTED))
    r = put(client, answer_url(started, vid), complete_payload(_labels(taxonomy, 2)), started["token"])
    assert r.status_code == 403 and "already submitted" in r.json()["error"]
    assert ClipAnswer.objects.get().labels == _labels(taxonomy, 1)


def test_a_rebinding_between_read_and_write_refuses_the_old_token(client, batch, taxonomy, monkeypatch):
    started = session(client, batch, **MTURK).json()
    vid = started["clips"][1]["video_id"]
    _between_read_and_write(monkeypatch, lambda: Assignment.objects.update(browser_secret_hash="pbkdf2$other"))
    r = put(client, answer_url(started, vid), complete_payload(_labels(taxonomy, 3)), started["token"])
    assert r.status_code == 403 and "bound to its browser" in r.json()["error"]
    assert not ClipAnswer.objects.exists()


def test_a_write_that_keeps_finding_the_assignment_changed_answers_503_and_saves_nothing(
    client, batch, taxonomy, monkeypatch
):
    started = session(client, batch, **MTURK).json()
    real = svc._save_sql
    monkeypatch.setattr(svc, "_save_sql", lambda *a: real(*a).replace(" WHERE id = %s", " WHERE false AND id = %s", 1))
    r = put(client, answer_url(started, started["clips"][0]["video_id"]), complete_payload(), started["token"])
    assert r.status_code == 503 and r["Retry-After"] == "1"  # the HIT page retries a 503 (api.js: transient)
    assert "nothing was saved" in r.json()["error"]
    assert not ClipAnswer.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_save_waits_for_a_submit_in_progress_and_then_is_refused(batch, taxonomy):
    """On PostgreSQL, with two connections: the submit holds the assignment's lock while the save arrives; the
    save's read sees it still in progress, its write waits for the submit's commit, sees the new status and writes
    nothing."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks across connections: set DATABASE_URL to PostgreSQL")
    client = Client()
    started = session(client, batch, **MTURK).json()
    vid = started["clips"][0]["video_id"]
    locked, out = threading.Event(), {}

    def submit():
        try:
            with transaction.atomic():
                a = Assignment.objects.select_for_update().get()
                a.status = Assignment.SUBMITTED
                a.save(update_fields=["status"])
                locked.set()
                time.sleep(0.6)
        finally:
            connection.close()

    thread = threading.Thread(target=submit)
    thread.start()
    assert locked.wait(10)
    t0 = time.monotonic()
    r = put(client, answer_url(started, vid), complete_payload(_labels(taxonomy, 4)), started["token"])
    out["waited"] = time.monotonic() - t0
    thread.join()
    assert r.status_code == 403 and "already submitted" in r.json()["error"], r.content
    assert out["waited"] > 0.3  # it waited for the submit's lock, then saw its commit
    assert not ClipAnswer.objects.exists()
