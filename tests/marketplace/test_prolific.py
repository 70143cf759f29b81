"""Prolific backend against a local HTTP server standing in for api.prolific.com."""

import json
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from crowd.marketplace import MarketplaceConfigError
from crowd.models import Assignment, Hit, MarketplaceCall, ProlificStudy
from crowd.services.assignments import assignment_start
from crowd.services.publish import batches_publish
from crowd.services.sync import marketplace_sync
from tests.crowd_helpers import fill_assignment


class FakeProlific:
    def __init__(self):
        self.requests = []
        self.submissions = []
        self.fail_next = 0

    def handle(self, method, path, body, auth):
        self.requests.append((method, path, body, auth))
        if self.fail_next:
            self.fail_next -= 1
            return 503, {"error": "try again"}
        if auth != "Token test-token":
            return 401, {"error": "bad token"}
        if method == "POST" and path == "/api/v1/studies/":
            return 201, {"id": "STUDY1", "status": "UNPUBLISHED", **body}
        if method == "POST" and path == "/api/v1/studies/STUDY1/transition/":
            return 200, {"id": "STUDY1", "status": "ACTIVE"}
        if method == "GET" and path == "/api/v1/studies/STUDY1/submissions/":
            return 200, {"results": self.submissions, "_links": {"next": {"href": None}}}
        if method == "POST" and path.startswith("/api/v1/submissions/"):
            return 200, {"id": path.split("/")[4], "status": body["action"]}
        if method == "PATCH" and path == "/api/v1/studies/STUDY1/":
            return 200, {"id": "STUDY1", **body}
        return 404, {"error": f"no route {method} {path}"}


@pytest.fixture
def prolific_server(settings):
    fake = FakeProlific()

    class Handler(BaseHTTPRequestHandler):
        def _do(self):
            n = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(n)) if n else None
            status, out = fake.handle(self.command, self.path, body, self.headers.get("Authorization"))
            data = json.dumps(out).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = _do

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.PROLIFIC_API_URL = f"http://127.0.0.1:{server.server_port}/api/v1/"
    settings.PROLIFIC_API_TOKEN = "test-token"
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture
def no_sleep(monkeypatch):
    from crowd.marketplace import prolific
    from crowd.marketplace.retry import RetryPolicy

    sleeps = []
    monkeypatch.setattr(prolific, "client_factory", lambda: prolific.Prolific(policy=RetryPolicy(sleep=sleeps.append)))
    return sleeps


def test_publish_creates_and_publishes_a_study_with_url_parameters(dataset, batches, prolific_server, no_sleep):
    prolific_server.fail_next = 1  # a transient 503 is retried
    result = batches_publish(dataset, batches=[batches[0]], backend="prolific", reward=Decimal("2.00"))
    hit = result.created[0]
    assert (hit.backend, hit.external_id, hit.status) == ("prolific", "STUDY1", "open")
    posts = [r for r in prolific_server.requests if r[0] == "POST" and r[1] == "/api/v1/studies/"]
    body = posts[-1][2]
    assert body["external_study_url"] == (
        f"https://avcrowd.example.org/hit/{batches[0].uuid}/?PROLIFIC_PID="
        "{{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"
    )
    assert body["total_available_places"] == 3 and body["reward"] == 200
    code = ProlificStudy.objects.get(hit=hit).completion_code
    assert body["completion_codes"][0]["code"] == code
    assert (
        "POST",
        "/api/v1/studies/STUDY1/transition/",
        {"action": "PUBLISH"},
        "Token test-token",
    ) in prolific_server.requests
    assert len(no_sleep) == 1 and MarketplaceCall.objects.filter(backend="prolific", ok=False).count() == 1


def test_sync_approves_and_rejects_submissions_and_reopens_a_place(
    dataset, batches, taxonomy, prolific_server, no_sleep
):
    batch = batches[0]
    batches_publish(dataset, batches=[batch], backend="prolific", reward=Decimal("2.00"))
    for pid, sid, good in (("P1", "S1", True), ("P2", "S2", False)):
        a = assignment_start(batch, backend="prolific", worker_external_id=pid, external_assignment_id=sid)
        fill_assignment(a, taxonomy, good=good)
    prolific_server.submissions = [
        {"id": "S1", "participant_id": "P1", "status": "AWAITING REVIEW"},
        {"id": "S2", "participant_id": "P2", "status": "AWAITING REVIEW"},
        {"id": "S3", "participant_id": "P3", "status": "ACTIVE"},
    ]
    summary = marketplace_sync()
    assert summary["approved"] == 1 and summary["rejected"] == 1 and summary["reposted"] == 1
    reqs = prolific_server.requests
    assert ("POST", "/api/v1/submissions/S1/transition/", {"action": "APPROVE"}, "Token test-token") in reqs
    reject = next(r for r in reqs if r[1] == "/api/v1/submissions/S2/transition/")
    assert reject[2]["action"] == "REJECT" and len(reject[2]["message"]) >= 100
    assert ("PATCH", "/api/v1/studies/STUDY1/", {"total_available_places": 4}, "Token test-token") in reqs
    assert Assignment.objects.get(external_assignment_id="S1").status == "approved"
    assert Hit.objects.get().max_assignments == 4


def test_missing_token_is_a_clear_message(dataset, batches, settings):
    settings.PROLIFIC_API_TOKEN = ""
    with pytest.raises(MarketplaceConfigError, match="PROLIFIC_API_TOKEN"):
        batches_publish(dataset, batches=[batches[0]], backend="prolific", reward=Decimal("2.00"))


def test_inhouse_assignment_to_named_users(dataset, batches, django_user_model):
    from catalog.errors import ValidationError
    from crowd.marketplace.inhouse import inhouse_assign
    from crowd.selectors.crowd import inhouse_tasks, next_batch_for

    ann = django_user_model.objects.create_user("ann", password="pw")
    task, created = inhouse_assign(batches[0], "ann")
    assert created and inhouse_assign(batches[0], "ann")[1] is False
    assert [r["url"] for r in inhouse_tasks(ann)] == [f"/hit/{batches[0].uuid}/"]
    assert next_batch_for(ann) == batches[0]
    with pytest.raises(ValidationError, match="no active user named 'bob'"):
        inhouse_assign(batches[0], "bob")


def test_inhouse_annotator_sees_assigned_batches(client, dataset, batches, django_user_model):
    from crowd.marketplace.inhouse import inhouse_assign

    ann = django_user_model.objects.create_user("ann", password="pw")
    django_user_model.objects.create_user("bob", password="pw")
    inhouse_assign(batches[0], ann)
    assert client.get("/ops/tasks/").status_code == 302  # login first
    client.login(username="bob", password="pw")
    assert "No batches assigned to you" in client.get("/ops/tasks/").content.decode()
    client.login(username="ann", password="pw")
    page = client.get("/ops/tasks/").content.decode()
    assert f'href="/hit/{batches[0].uuid}/"' in page and "not started" in page
