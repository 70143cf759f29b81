"""Slots and rate limits of the public HIT API: invented worker ids cannot hold a batch's slots for long (expiry
after the HIT's assignment duration, a limit of open assignments per address), and every endpoint is throttled per
address and per worker id or assignment (429 naming the limit, with Retry-After; the page retries)."""

import json
import os
import random
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone

from crowd.models import Assignment, Batch, Hit
from crowd.services.binding import assignments_expire
from crowd.tasks import assignments_expire_task
from tests.crowd_helpers import complete_payload

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


def arrive(batch, worker, ip="198.51.100.7", client=None, **extra):
    params = {
        "workerId": worker,
        "assignmentId": f"3A{worker}",
        "hitId": "3HIT",
        "turkSubmitTo": "https://www.mturk.com",
    }
    return (client or Client()).get(f"/api/hit/{batch.uuid}/session", dict(params, **extra), REMOTE_ADDR=ip)


def test_a_squatter_can_hold_only_a_few_slots_per_address(batch, settings):
    settings.HIT_MAX_OPEN_PER_CLIENT = 2
    assert arrive(batch, "FAKE1").status_code == 200
    assert arrive(batch, "FAKE2").status_code == 200
    r = arrive(batch, "FAKE3")
    assert r.status_code == 429 and "unfinished tasks" in r.json()["error"] and int(r["Retry-After"]) > 0
    # the real worker from another address still gets the last slot
    assert arrive(batch, "REALWORKER", ip="203.0.113.9").status_code == 200
    assert Assignment.objects.count() == 3
    batch.refresh_from_db()
    assert batch.status == Batch.CLOSED


def test_unsubmitted_assignments_expire_after_the_hits_duration_and_free_the_slot(batch):
    Hit.objects.create(
        batch=batch,
        reward="0.50",
        max_assignments=3,
        target_assignments=3,
        assignment_duration_seconds=600,
        unique_request_token="tok-expiry",
    )
    for i in range(3):
        assert arrive(batch, f"W{i}", ip=f"192.0.2.{i}").status_code == 200
    a = Assignment.objects.get(worker__external_id="W0")
    assert abs((a.expires_at - a.started_at).total_seconds() - 600) < 5
    r = arrive(batch, "LATECOMER", ip="192.0.2.50")
    assert r.status_code == 403 and "all the annotators it needs" in r.json()["error"]
    # ten minutes later the first two have not submitted (the third did, so it stays)
    Assignment.objects.filter(worker__external_id__in=["W0", "W1"]).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    Assignment.objects.filter(worker__external_id="W2").update(
        status=Assignment.SUBMITTED, expires_at=timezone.now() - timedelta(seconds=1)
    )
    # the session start expires the batch's overdue assignments before counting the slots
    assert arrive(batch, "LATECOMER", ip="192.0.2.50").status_code == 200
    expired = Assignment.objects.filter(status=Assignment.EXPIRED)
    assert sorted(expired.values_list("worker__external_id", flat=True)) == ["W0", "W1"]
    assert all(a.decision_log.filter(new_status="expired", reason__startswith="expired").exists() for a in expired)
    # the expired worker's page is told so and cannot save any more
    r = arrive(batch, "W0", ip="192.0.2.0")
    assert r.status_code == 403 and "expired" in r.json()["error"]


def test_the_beat_task_expires_every_batch(batch):
    assert arrive(batch, "W1").status_code == 200
    assert assignments_expire_task() == 0
    Assignment.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    assert assignments_expire_task() == 1
    assert Assignment.objects.get().status == Assignment.EXPIRED
    assert assignments_expire() == 0


def test_sessions_are_throttled_per_address_and_per_worker_id(batch, settings):
    settings.HIT_THROTTLE_RATES = dict(
        settings.HIT_THROTTLE_RATES, hit_session_ip="3/minute", hit_session_worker="2/minute"
    )
    for _ in range(2):
        assert arrive(batch, "W1", ip="192.0.2.1").status_code == 200
    r = arrive(batch, "W1", ip="192.0.2.2")  # same worker id from another address
    assert r.status_code == 429 and "for this worker id" in r.json()["error"] and "2/minute" in r.json()["error"]
    assert int(r["Retry-After"]) >= 1
    r = arrive(batch, "W2", ip="192.0.2.1")  # the first address's third request is fine, the fourth is not
    assert r.status_code == 200
    r = arrive(batch, "W3", ip="192.0.2.1")
    assert r.status_code == 429 and "from this address" in r.json()["error"]
    assert not Assignment.objects.filter(worker__external_id="W3").exists()


def test_the_client_address_is_the_one_the_proxy_saw(batch, settings):
    """Behind Caddy (NUM_PROXIES=1) a client cannot dodge the limit with its own X-Forwarded-For."""
    from rest_framework.settings import api_settings

    settings.HIT_THROTTLE_RATES = dict(settings.HIT_THROTTLE_RATES, hit_session_ip="2/minute")
    settings.REST_FRAMEWORK = dict(settings.REST_FRAMEWORK, NUM_PROXIES=1)
    api_settings.reload()
    try:
        codes = [
            Client()
            .get(
                f"/api/hit/{batch.uuid}/session",
                REMOTE_ADDR="10.0.0.2",
                HTTP_X_FORWARDED_FOR=f"1.2.3.{i}, 198.51.100.7",
            )
            .status_code
            for i in range(3)
        ]
    finally:
        api_settings.reload()
    assert codes == [200, 200, 429]


@pytest.mark.parametrize("proxies", [None, 0, 1, 2])
@pytest.mark.parametrize(
    "forwarded", [None, "", "1.2.3.4", "1.2.3.4, 198.51.100.7", " 1.2.3.4 ,198.51.100.7 , 10.0.0.9", "a,b,c,d"]
)
def test_the_client_address_follows_drfs_proxy_rule(settings, proxies, forwarded):
    """catalog.throttles.client_ip reads the address as DRF's throttles do (BaseThrottle.get_ident), for every
    NUM_PROXIES and X-Forwarded-For a client can send."""
    from django.test import RequestFactory
    from rest_framework.settings import api_settings
    from rest_framework.throttling import BaseThrottle

    from catalog.throttles import client_ip

    settings.REST_FRAMEWORK = dict(settings.REST_FRAMEWORK, NUM_PROXIES=proxies)
    api_settings.reload()
    try:
        extra = {} if forwarded is None else {"HTTP_X_FORWARDED_FOR": forwarded}
        request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.2", **extra)
        assert client_ip(request) == (BaseThrottle().get_ident(request) or "unknown")
    finally:
        api_settings.reload()


def test_saves_are_throttled_per_assignment(batch, settings):
    settings.HIT_THROTTLE_RATES = dict(settings.HIT_THROTTLE_RATES, hit_write_assignment="3/minute")
    data = arrive(batch, "W1").json()
    vid = data["clips"][0]["video_id"]
    url = f"/api/hit/assignments/{data['assignment']}/answers/{vid}"
    codes = [
        Client()
        .put(url, json.dumps(complete_payload()), content_type="application/json", HTTP_X_HIT_TOKEN=data["token"])
        .status_code
        for _ in range(4)
    ]
    assert codes == [200, 200, 200, 429]


REDIS_URL = os.environ.get("CACHE_URL") or os.environ.get("CELERY_BROKER_URL", "")


@pytest.mark.skipif(not REDIS_URL.startswith("redis"), reason="needs Redis (CELERY_BROKER_URL or CACHE_URL)")
def test_the_limits_are_shared_by_every_process_through_redis(batch, settings):
    """Two gunicorn workers count together: requests made here and in another process share one limit."""
    settings.CACHES = {
        "default": {
            "BACKEND": "catalog.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "avc",
        }
    }
    settings.HIT_THROTTLE_RATES = dict(settings.HIT_THROTTLE_RATES, hit_session_ip="2/minute")
    ip = f"192.0.2.{random.randint(1, 254)}-{uuid.uuid4().hex}"  # a key of its own (no FLUSHDB of the shared Redis)
    assert [arrive(batch, f"W{i}", ip=ip).status_code for i in range(2)] == [200, 200]
    code = (
        "import django, os; django.setup(); from django.conf import settings; from django.test import Client; "
        f"settings.CACHES = {settings.CACHES!r}; "
        "settings.HIT_THROTTLE_RATES = dict(settings.HIT_THROTTLE_RATES, hit_session_ip='2/minute'); "
        "c = Client(); print([c.get('/api/hit/00000000-0000-4000-8000-000000000000/session', "
        f"REMOTE_ADDR='{ip}').status_code for _ in range(1)])"
    )
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="config.settings_test")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    # the other process sees this one's two requests: its first is already over the limit (and reaches no database)
    assert out.stdout.strip().splitlines()[-1] == "[429]", out.stderr[-2000:]


def test_an_expired_worker_who_accepts_again_in_the_same_browser_continues(batch):
    browser = Client()
    data = arrive(batch, "W1", client=browser).json()
    vid = data["clips"][0]["video_id"]
    url = f"/api/hit/assignments/{data['assignment']}/answers/{vid}"
    body = json.dumps(complete_payload())
    assert browser.put(url, body, content_type="application/json", HTTP_X_HIT_TOKEN=data["token"]).status_code == 200
    Assignment.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert assignments_expire() == 1
    # the expired assignment takes no saves, and its old MTurk assignment id does not bring it back
    r = browser.put(url, body, content_type="application/json", HTTP_X_HIT_TOKEN=data["token"])
    assert r.status_code == 403 and "expired" in r.json()["error"]
    assert arrive(batch, "W1", client=browser).status_code == 403
    # accepted again on MTurk (a new assignment id), same browser: the answers are still there
    again = arrive(batch, "W1", client=browser, assignmentId="3ANEW")
    assert again.status_code == 200 and again.json()["answers"][vid]["played"] is True
    a = Assignment.objects.get()
    assert a.status == Assignment.IN_PROGRESS and a.external_assignment_id == "3ANEW" and a.expires_at > timezone.now()
    # but not when the slot went to others meanwhile
    Assignment.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assignments_expire()
    for i in range(3):
        assert arrive(batch, f"OTHER{i}", ip=f"192.0.2.{10 + i}").status_code == 200
    r = arrive(batch, "W1", client=browser, assignmentId="3ANEWER")
    assert r.status_code == 403 and "place went to another worker" in r.json()["error"]


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_a_save_over_the_address_limit_does_not_use_up_the_assignments_limit(batch, settings, backend):
    """An autosave passes two limits, per address then per assignment, counted in one round trip on Redis. A
    stranger hammering an assignment from one address is stopped by the address limit without spending the
    assignment's: its worker, elsewhere, keeps saving until the assignment's own limit."""
    if backend == "redis":
        if not REDIS_URL.startswith("redis"):
            pytest.skip("needs Redis (CELERY_BROKER_URL or CACHE_URL)")
        prefix = f"avc-test-{uuid.uuid4().hex}"
        settings.CACHES = {
            "default": {
                "BACKEND": "catalog.cache.RedisCache",
                "LOCATION": REDIS_URL,
                "KEY_PREFIX": prefix,
            }
        }
    settings.HIT_THROTTLE_RATES = dict(
        settings.HIT_THROTTLE_RATES, hit_write_ip="2/minute", hit_write_assignment="3/minute"
    )
    data = arrive(batch, "W1", ip="198.51.100.20").json()
    url = f"/api/hit/assignments/{data['assignment']}/answers/{data['clips'][0]['video_id']}"

    def save(ip):
        r = Client().put(
            url,
            json.dumps(complete_payload()),
            content_type="application/json",
            HTTP_X_HIT_TOKEN=data["token"],
            REMOTE_ADDR=ip,
        )
        return r.status_code, r.json().get("error", "") if r.status_code == 429 else ""

    stranger = [save("203.0.113.9") for _ in range(4)]
    assert [code for code, _ in stranger] == [200, 200, 429, 429]
    assert all("from this address" in error for _, error in stranger[2:])
    worker = [save("198.51.100.20") for _ in range(2)]
    assert worker[0] == (200, "")  # the assignment's third save: the stranger's refused ones were not counted
    assert worker[1][0] == 429 and "for this assignment" in worker[1][1]
    if backend == "redis":
        from django.core.cache import cache

        client = cache._cache.get_client()
        keys = list(client.scan_iter(f"{prefix}:*"))
        assert len(keys) == 5  # session: address, worker id; saves: the two addresses, the assignment
        assert all(0 < client.ttl(k) <= 61 for k in keys)  # every window's counter expires with the window
        client.delete(*keys)
