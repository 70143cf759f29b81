"""The HIT page API (/api/hit/) end to end through the Django test client."""

import json

import pytest

from crowd.models import Assignment, ClipAnswer, Worker
from tests.crowd_helpers import complete_payload, gold_perfect_labels

MTURK = {"assignmentId": "A1", "hitId": "H1", "workerId": "W1", "turkSubmitTo": "https://workersandbox.mturk.com"}


def session(client, batch, **params):
    return client.get(f"/api/hit/{batch.uuid}/session", params)


def put(client, url, body, token):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.put(url, data, content_type="application/json", HTTP_X_HIT_TOKEN=token)


def answer_url(data, vid):
    return f"/api/hit/assignments/{data['assignment']}/answers/{vid}"


@pytest.fixture
def started(client, batch):
    r = session(client, batch, **MTURK)
    assert r.status_code == 200, r.content
    return r.json()


def test_mturk_arrival_binds_once_and_returns_the_whole_batch(client, batch, started, taxonomy):
    assert started["preview"] is False and started["token"] and started["status"] == "in_progress"
    assert started["batch_size"] == 20 and len(started["clips"]) == 20
    assert started["classes"] == taxonomy and len(started["classes"]) == 309
    assert [m["key"] for m in started["meta"]] == ["background_music", "voice_over", "static_image"]
    assert started["handoff"] is None and started["answers"] == {}
    first = started["clips"][0]
    assert set(first) == {"video_id", "media_url", "proposals", "has_audio", "has_video"}
    assert "/media/clip/" in first["media_url"]
    # regular clips propose their original label (no proposal set yet)
    regular = [c for c in started["clips"] if c["video_id"].startswith("r")]
    assert regular[0]["proposals"] == [taxonomy[int(regular[0]["video_id"][1:])]]
    again = session(client, batch, **MTURK).json()
    assert again["assignment"] == started["assignment"]
    a = Assignment.objects.get()
    assert (a.worker.backend, a.worker.external_id, a.external_assignment_id, a.external_hit_id) == (
        "mturk",
        "W1",
        "A1",
        "H1",
    )


@pytest.mark.parametrize(
    "params",
    [
        {"assignmentId": "ASSIGNMENT_ID_NOT_AVAILABLE", "hitId": "H1"},
        {},
    ],
)
def test_preview_shows_first_clip_and_stores_nothing(client, batch, params):
    r = session(client, batch, **params)
    data = r.json()
    assert r.status_code == 200 and data["preview"] is True and data["token"] is None
    assert data["assignment"] is None and len(data["clips"]) == 1 and data["batch_size"] == 20
    assert Worker.objects.count() == 0 and Assignment.objects.count() == 0


def test_unknown_or_malformed_batch_is_404_revealing_nothing(client, batch):
    for bad in ("00000000-0000-0000-0000-000000000000", "not-a-uuid"):
        r = client.get(f"/api/hit/{bad}/session", MTURK)
        assert r.status_code == 404 and r.json() == {"error": "not found"}


def test_autosave_is_an_idempotent_upsert_restored_on_reload(client, batch, started, taxonomy):
    vid = started["clips"][3]["video_id"]
    body = complete_payload([{"name": taxonomy[5], "audible": True, "visible": False}])
    body["comment"] = "dog off screen"
    for _ in range(2):
        r = put(client, answer_url(started, vid), body, started["token"])
        assert r.status_code == 200 and r.json()["saved"] is True and r.json()["video_id"] == vid
    assert ClipAnswer.objects.count() == 1
    row = ClipAnswer.objects.get()
    assert row.labels == body["labels"] and row.played and row.watch_seconds == 1.5 and row.comment == body["comment"]
    # a late retry with played=false / less watch time does not undo what was seen
    put(client, answer_url(started, vid), dict(body, played=False, watch_seconds=0.5), started["token"])
    row.refresh_from_db()
    assert row.played and row.watch_seconds == 1.5
    r = put(client, f"/api/hit/assignments/{started['assignment']}/position", {"position": 3}, started["token"])
    assert r.status_code == 200
    reloaded = session(client, batch, **MTURK).json()
    assert reloaded["position"] == 3 and reloaded["answers"][vid]["labels"] == body["labels"]


@pytest.mark.parametrize(
    "vid_kind,body,field",
    [
        ("other", None, "video_id"),
        ("ok", {"labels": [{"name": "no such class", "audible": True, "visible": False}]}, "labels"),
        ("ok", "{not json", "body"),
        ("ok", "[1, 2]", "body"),
        ("ok", {"played": "yes"}, "played"),
        ("ok", {"media_failed": "broken"}, "media_failed"),
        ("ok", {"background_music": 1}, "background_music"),
        ("ok", {"watch_seconds": -3}, "watch_seconds"),
        ("ok", {"colour": "red"}, "colour"),
        ("ok", {"labels": [{"name": "dog barking", "audible": "y", "visible": False}]}, "labels"),
    ],
)
def test_bad_saves_are_400_naming_the_field_and_store_nothing(client, started, vid_kind, body, field):
    vid = "r999-not-in-batch" if vid_kind == "other" else started["clips"][0]["video_id"]
    payload = complete_payload() if body is None else body
    r = put(client, answer_url(started, vid), payload, started["token"])
    assert r.status_code == 400, r.content
    assert r.json()["field"] == field and r.json()["error"]
    assert ClipAnswer.objects.count() == 0


def test_tokens_bind_the_assignment_to_its_worker(client, batch, started):
    other = session(client, batch, **dict(MTURK, workerId="W2", assignmentId="A2")).json()
    vid = started["clips"][0]["video_id"]
    for token in (other["token"], "", "garbage"):
        r = put(client, answer_url(started, vid), complete_payload(), token)
        assert r.status_code == 403 and r.json()["error"]
    r = client.put(answer_url(started, vid), json.dumps(complete_payload()), content_type="application/json")
    assert r.status_code == 403 and "X-HIT-Token" in r.json()["error"]
    r = put(
        client,
        f"/api/hit/assignments/00000000-0000-0000-0000-000000000000/answers/{vid}",
        complete_payload(),
        started["token"],
    )
    assert r.status_code == 404 and r.json() == {"error": "not found"}
    assert ClipAnswer.objects.count() == 0


def test_submit_checks_completeness_then_hands_off_to_mturk_and_is_harmless_twice(client, batch, started, taxonomy):
    url = f"/api/hit/assignments/{started['assignment']}/submit"
    clips = started["clips"]
    first = clips[0]["video_id"]
    put(client, answer_url(started, first), dict(complete_payload(), voice_over=None, played=False), started["token"])
    r = client.post(url, "{}", content_type="application/json", HTTP_X_HIT_TOKEN=started["token"])
    assert r.status_code == 400 and r.json()["field"] == "answers"
    incomplete = {row["video_id"]: row["missing"] for row in r.json()["details"]["incomplete"]}
    assert incomplete[first] == ["played", "voice_over"] and len(incomplete) == 20
    assert incomplete[clips[1]["video_id"]] == ["played", "background_music", "voice_over", "static_image"]
    assert Assignment.objects.get().status == "in_progress"
    for clip in clips:
        vid = clip["video_id"]
        labels = gold_perfect_labels(taxonomy, vid) if vid.startswith("g") else []
        assert put(client, answer_url(started, vid), complete_payload(labels), started["token"]).status_code == 200
    results = [
        client.post(
            url, json.dumps({"work_seconds": 321}), content_type="application/json", HTTP_X_HIT_TOKEN=started["token"]
        )
        for _ in range(2)
    ]
    assert [r.status_code for r in results] == [200, 200] and results[0].json() == results[1].json()
    # scored, but not approved: MTurk has not reported this assignment for this worker yet (the next sync does)
    assert results[0].json()["status"] == "submitted"
    a = Assignment.objects.get()
    assert results[0].json()["handoff"] == {
        "kind": "mturk",
        "action": "https://workersandbox.mturk.com/mturk/externalSubmit",
        # MTurk asks for at least one answer field besides assignmentId: ours names the avcrowd assignment
        "fields": {"assignmentId": "A1", "avcrowdAssignment": str(a.uuid)},
    }
    assert a.work_seconds == 321 and a.catch_f1 == 1.0 and a.decision_log.count() == 1
    assert a.verified_at is None and "unverified" in a.decision_reason
    r = put(client, answer_url(started, first), complete_payload(), started["token"])
    assert r.status_code == 403
    r = put(client, f"/api/hit/assignments/{started['assignment']}/position", {"position": 1}, started["token"])
    assert r.status_code == 403
    assert session(client, batch, **MTURK).json()["handoff"]["kind"] == "mturk"


def test_a_clip_reported_as_not_playing_needs_no_answers_and_the_report_can_be_taken_back(
    client, batch, started, taxonomy
):
    url = f"/api/hit/assignments/{started['assignment']}/submit"
    vids = [c["video_id"] for c in started["clips"]]
    broken = next(v for v in vids if not v.startswith("g"))
    assert put(client, answer_url(started, broken), {"media_failed": True}, started["token"]).status_code == 200
    for vid in vids:
        if vid != broken:
            labels = gold_perfect_labels(taxonomy, vid) if vid.startswith("g") else []
            assert put(client, answer_url(started, vid), complete_payload(labels), started["token"]).status_code == 200
    # the reload restores the report; taking it back (the clip played after all) makes the clip incomplete again
    assert session(client, batch, **MTURK).json()["answers"][broken]["media_failed"] is True
    assert put(client, answer_url(started, broken), {"media_failed": False}, started["token"]).status_code == 200
    r = client.post(url, "{}", content_type="application/json", HTTP_X_HIT_TOKEN=started["token"])
    assert r.status_code == 400
    assert r.json()["details"]["incomplete"] == [
        {
            "video_id": broken,
            "position": vids.index(broken),
            "missing": ["played", "background_music", "voice_over", "static_image"],
        }
    ]
    assert put(client, answer_url(started, broken), {"media_failed": True}, started["token"]).status_code == 200
    r = client.post(url, "{}", content_type="application/json", HTTP_X_HIT_TOKEN=started["token"])
    assert r.status_code == 200 and r.json()["status"] == "submitted"  # approved once MTurk reports it
    stored = ClipAnswer.objects.get(clip__video_id=broken)
    assert stored.media_failed and not stored.played and stored.labels == []


def test_prolific_arrival_and_completion_url(client, batch, settings):
    settings.PROLIFIC_COMPLETION_CODE = "C0DE42"
    data = session(client, batch, PROLIFIC_PID="P1", STUDY_ID="S1", SESSION_ID="X1").json()
    a = Assignment.objects.get()
    assert (a.backend, a.worker.external_id, a.external_assignment_id, a.external_hit_id) == (
        "prolific",
        "P1",
        "X1",
        "S1",
    )
    a.status = "submitted"
    a.save()
    assert session(client, batch, PROLIFIC_PID="P1").json()["handoff"] == {
        "kind": "prolific",
        "url": "https://app.prolific.com/submissions/complete?cc=C0DE42",
    }
    assert data["token"]


def test_inhouse_login_gets_a_token_and_the_next_batch(client, make_dataset, django_user_model, taxonomy):
    from crowd.services.batches import batches_create

    ds = make_dataset(n_regular=36, n_gold=4)
    b1, b2 = batches_create(ds)
    from django.contrib.auth.models import Group

    from crowd.models import InhouseTask

    ann = django_user_model.objects.create_user("ann", password="x")
    ann.groups.add(Group.objects.get_or_create(name="annotators")[0])
    InhouseTask.objects.create(batch=b1, user=ann)
    InhouseTask.objects.create(batch=b2, user=ann)
    client.force_login(ann)
    data = client.get(f"/api/hit/{b1.uuid}/session", HTTP_X_HIT_PAGE="1").json()
    assert data["preview"] is False and data["token"]
    a = Assignment.objects.get()
    assert a.backend == "inhouse" and a.worker.user.username == "ann"
    from crowd.selectors.crowd import assignment_handoff

    a.status = "approved"
    a.save(update_fields=["status"])
    assert assignment_handoff(a) == {"kind": "inhouse", "next_url": f"/hit/{b2.uuid}/"}


def test_blocked_worker_and_batch_full_are_refused_readably(client, batch):
    Worker.objects.create(backend="mturk", external_id="BAD", is_blocked=True)
    r = session(client, batch, **dict(MTURK, workerId="BAD", assignmentId="AX"))
    assert r.status_code == 403 and "no longer" in r.json()["error"]
    for i in range(3):
        assert session(client, batch, **dict(MTURK, workerId=f"W{i}", assignmentId=f"A{i}")).status_code == 200
    r = session(client, batch, **dict(MTURK, workerId="W9", assignmentId="A9"))
    assert r.status_code == 403 and "all the annotators" in r.json()["error"]
    assert Assignment.objects.count() == 3


def test_mturk_assignment_id_cannot_be_taken_by_another_worker(client, batch, started):
    r = session(client, batch, **dict(MTURK, workerId="W2"))
    assert r.status_code == 403 and Assignment.objects.count() == 1


def test_bad_turk_submit_to_is_refused(client, batch):
    r = session(client, batch, **dict(MTURK, turkSubmitTo="javascript:alert(1)"))
    assert r.status_code == 400 and r.json()["field"] == "turkSubmitTo"
    assert Assignment.objects.count() == 0


def test_bad_position_and_submit_body(client, started):
    url = f"/api/hit/assignments/{started['assignment']}"
    for body in ({"position": 20}, {"position": "2"}, {}):
        r = put(client, f"{url}/position", body, started["token"])
        assert r.status_code == 400 and r.json()["field"] == "position"
    r = client.post(
        f"{url}/submit",
        json.dumps({"work_seconds": "x"}),
        content_type="application/json",
        HTTP_X_HIT_TOKEN=started["token"],
    )
    assert r.status_code == 400 and r.json()["field"] == "work_seconds"
