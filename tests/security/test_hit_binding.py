"""A stranger who knows every id in a HIT URL (batch, worker id, HIT id: all visible in MTurk's preview) can neither
read, write nor rebind a worker's assignment; only the browser that started it (its secret) or the same
marketplace assignment id resumes it, and the worker's submit target stays MTurk's."""

import json

import pytest
from django.core import signing
from django.test import Client

from crowd.models import Assignment, ClipAnswer
from crowd.services.assignments import HIT_TOKEN_SALT
from tests.crowd_helpers import complete_payload

pytestmark = pytest.mark.django_db

VICTIM = {
    "workerId": "A2VICTIM",
    "assignmentId": "3ASSIGNVICTIM",
    "hitId": "3HITPUBLIC",
    "turkSubmitTo": "https://www.mturk.com",
}


def session(client, batch, headers=None, **params):
    return client.get(f"/api/hit/{batch.uuid}/session", params, headers=headers or {})


def save(client, data, vid, body):
    url = f"/api/hit/assignments/{data['assignment']}/answers/{vid}"
    return client.put(url, json.dumps(body), content_type="application/json", HTTP_X_HIT_TOKEN=data["token"])


@pytest.fixture
def victim(batch):
    browser = Client()
    r = session(browser, batch, **VICTIM)
    assert r.status_code == 200, r.content
    data = r.json()
    assert data["token"]
    vid = data["clips"][0]["video_id"]
    assert save(browser, data, vid, complete_payload()).status_code == 200
    return browser, data, vid


def _unchanged(assignment_uuid):
    a = Assignment.objects.get(uuid=assignment_uuid)
    assert (a.external_assignment_id, a.external_hit_id, a.turk_submit_to) == (
        "3ASSIGNVICTIM",
        "3HITPUBLIC",
        "https://www.mturk.com",
    )
    return a


def test_takeover_with_the_public_worker_id_is_refused_and_changes_nothing(batch, victim):
    _, data, vid = victim
    attacker = Client()
    for submit_to in ("https://www.mturk.com", "https://workersandbox.mturk.com"):
        r = session(attacker, batch, **dict(VICTIM, assignmentId="3ATTACKERS", turkSubmitTo=submit_to))
        assert r.status_code == 403, r.content
        body = r.json()
        assert body["field"] == "assignmentId" and "bound to the browser that started it" in body["error"]
        assert "token" not in body and "answers" not in body
    _unchanged(data["assignment"])
    assert Assignment.objects.count() == 1
    # the victim's answer was neither read nor overwritten
    assert ClipAnswer.objects.get().labels == complete_payload()["labels"]


def test_the_victims_submit_target_cannot_be_pointed_elsewhere(batch, victim):
    _, data, _ = victim
    attacker = Client()
    for evil in (
        "https://evil.example",
        "https://evil.example/mturk",
        "http://www.mturk.com",
        "https://www.mturk.com.evil.example",
    ):
        r = session(attacker, batch, **dict(VICTIM, turkSubmitTo=evil))
        assert r.status_code == 400, (evil, r.content)
        body = r.json()
        assert (
            body["field"] == "turkSubmitTo"
            and "https://www.mturk.com, https://workersandbox.mturk.com" in body["error"]
        )
    # even with the victim's own assignment id (resume without the secret) the target is not rebound
    r = session(attacker, batch, **dict(VICTIM, turkSubmitTo="https://workersandbox.mturk.com", hitId="3OTHER"))
    assert r.status_code == 200
    assert "avcrowd_hit" not in r.cookies and r.json()["secret"] is None
    _unchanged(data["assignment"])


def test_the_same_browser_resumes_and_may_rebind_after_reaccepting(batch, victim):
    browser, data, vid = victim
    assert len(data["secret"]) >= 40  # issued once, by the first session
    again = session(browser, batch, **VICTIM).json()  # the HttpOnly cookie
    assert again["assignment"] == data["assignment"] and again["answers"][vid]["played"] is True
    # storage copy only (the browser dropped the third-party cookie): the header
    other_tab = Client()
    r = session(other_tab, batch, headers={"X-HIT-Secret": data["secret"]}, **dict(VICTIM, assignmentId="3REACCEPTED"))
    assert r.status_code == 200, r.content
    assert Assignment.objects.get(uuid=data["assignment"]).external_assignment_id == "3REACCEPTED"


def test_a_worker_who_lost_the_secret_resumes_only_with_the_same_assignment_id(batch, victim):
    _, data, vid = victim
    new_browser = Client()
    r = session(new_browser, batch, **VICTIM)
    assert r.status_code == 200 and r.json()["assignment"] == data["assignment"]
    assert r.json()["answers"][vid]["played"] is True
    assert session(Client(), batch, **dict(VICTIM, assignmentId="3GUESSED")).status_code == 403


def test_a_token_issued_before_the_binding_no_longer_writes(batch, victim):
    _, data, vid = victim
    a = Assignment.objects.get(uuid=data["assignment"])
    old = signing.dumps({"a": str(a.uuid), "w": a.worker_id}, salt=HIT_TOKEN_SALT)  # what main handed to anyone
    r = save(Client(), dict(data, token=old), vid, complete_payload(labels=[]))
    assert r.status_code == 403 and r.json()["field"] == "X-HIT-Token"
    assert ClipAnswer.objects.get().labels == complete_payload()["labels"]


def test_the_secret_cookie_is_httponly_and_cross_site_only_over_https(batch):
    r = session(Client(), batch, **VICTIM)
    cookie = r.cookies["avcrowd_hit"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["path"] == f"/api/hit/{batch.uuid}/"
    r = Client().get(
        f"/api/hit/{batch.uuid}/session", dict(VICTIM, workerId="A2OTHER", assignmentId="3OTHER"), secure=True
    )
    cookie = r.cookies["avcrowd_hit"]
    assert cookie["secure"] and cookie["samesite"] == "None" and cookie["httponly"]


def test_formula_like_and_odd_marketplace_ids_are_refused(batch):
    for key, value in (("workerId", "=SUM(1+1)"), ("assignmentId", "+cmd|x"), ("hitId", "@x y")):
        r = session(Client(), batch, **dict(VICTIM, **{key: value}))
        assert r.status_code == 400 and r.json()["field"] == key, r.content
    assert not Assignment.objects.exists()


def test_the_demo_hand_off_to_this_server_only_when_enabled(batch, settings):
    params = dict(VICTIM, turkSubmitTo="http://testserver/demo")
    settings.HIT_SUBMIT_TO_SELF = False
    r = session(Client(), batch, **params)
    assert r.status_code == 400 and r.json()["field"] == "turkSubmitTo"
    settings.HIT_SUBMIT_TO_SELF = True
    assert session(Client(), batch, **params).status_code == 200


def test_a_cross_site_get_does_not_bind_a_signed_in_annotator(batch, role_user):
    from crowd.models import InhouseTask

    ann = role_user("ann", "annotator")
    InhouseTask.objects.create(batch=batch, user=ann)
    browser = Client()
    browser.force_login(ann)
    # a link or <img> on another site: no X-HIT-Page header (and a browser says cross-site)
    for headers in ({}, {"Sec-Fetch-Site": "cross-site", "X-HIT-Page": "1"}):
        r = session(browser, batch, headers=headers)
        assert r.status_code == 400 and r.json()["field"] == "X-HIT-Page", r.content
    assert not Assignment.objects.exists()
    r = session(browser, batch, headers={"X-HIT-Page": "1", "Sec-Fetch-Site": "same-origin"})
    assert r.status_code == 200 and Assignment.objects.get().backend == "inhouse"


def test_annotators_label_only_their_assigned_batches(batch, role_user):
    from crowd.models import InhouseTask

    for name, role in (("ann", "annotator"), ("res", "researcher"), ("plain", None)):
        browser = Client()
        browser.force_login(role_user(name, role))
        r = session(browser, batch, headers={"X-HIT-Page": "1"})
        assert r.status_code == 403 and "assigned to them" in r.json()["error"], (name, r.content)
    assert not Assignment.objects.exists()
    from django.contrib.auth import get_user_model

    InhouseTask.objects.create(batch=batch, user=get_user_model().objects.get(username="ann"))
    browser = Client()
    browser.force_login(get_user_model().objects.get(username="ann"))
    assert session(browser, batch, headers={"X-HIT-Page": "1"}).status_code == 200
