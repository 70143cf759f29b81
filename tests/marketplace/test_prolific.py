"""Prolific backend against a local HTTP server standing in for api.prolific.com."""

import json
import re
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from catalog.errors import ValidationError
from crowd.marketplace import MarketplaceConfigError
from crowd.models import Assignment, Hit, MarketplaceCall, ProlificStudy
from crowd.services.assignments import assignment_start
from crowd.services.publish import batches_publish
from crowd.services.sync import marketplace_sync
from tests.crowd_helpers import fill_assignment

REJECTION_CATEGORIES = {
    "TOO_QUICKLY",
    "TOO_SLOWLY",
    "FAILED_INSTRUCTIONS",
    "INCOMP_LONGITUDINAL",
    "FAILED_CHECK",
    "LOW_EFFORT",
    "MALINGERING",
    "NO_CODE",
    "BAD_CODE",
    "NO_DATA",
    "UNSUPP_DEVICE",
    "OTHER",
}
STUDY_FIELDS = {
    "name": str,
    "description": str,
    "external_study_url": str,
    "prolific_id_option": str,
    "completion_codes": list,
    "total_available_places": int,
    "estimated_completion_time": int,
    "reward": int,
}


def check_filters(filters) -> list[str]:
    """Prolific's study filters: select filters carry selected_values (a list of strings), range filters a
    selected_range {lower?, upper?} of numbers."""
    bad = []
    for f in filters:
        if not isinstance(f.get("filter_id"), str):
            bad.append(f"filter without filter_id: {f}")
        elif "selected_values" in f:
            if not f["selected_values"] or not all(isinstance(v, str) for v in f["selected_values"]):
                bad.append(f"{f['filter_id']}: selected_values must be a non-empty list of strings")
        elif "selected_range" in f:
            rng = f["selected_range"]
            if not rng or set(rng) - {"lower", "upper"} or not all(isinstance(v, (int, float)) for v in rng.values()):
                bad.append(f"{f['filter_id']}: selected_range must be {{lower?, upper?}} numbers")
        else:
            bad.append(f"{f['filter_id']}: neither selected_values nor selected_range")
    return bad


class FakeProlific:
    """api.prolific.com as documented (API v1): each request's method, path and JSON fields are checked, and a
    request that breaks the documented shape gets a 400 naming the problem (and is recorded in `violations`)."""

    def __init__(self):
        self.requests = []
        self.submissions = []
        self.fail_next = 0
        self.fail_pay = 0
        self.violations = []
        self.study_status = "UNPUBLISHED"
        self.groups = {}
        self.bulks = {}
        self.paid = []

    def _bad(self, problem):
        self.violations.append(problem)
        return 400, {"error": problem}

    def handle(self, method, path, body, auth):
        self.requests.append((method, path, body, auth))
        if self.fail_next:
            self.fail_next -= 1
            return 503, {"error": "try again"}
        if auth != "Token test-token":
            return 401, {"error": "bad token"}
        if method == "POST" and path == "/api/v1/studies/":
            problems = [f"{k} must be {t.__name__}" for k, t in STUDY_FIELDS.items() if not isinstance(body.get(k), t)]
            problems += check_filters(body.get("filters", []))
            if problems:
                return self._bad("; ".join(problems))
            return 201, {"id": "STUDY1", "status": "UNPUBLISHED", **body}
        if method == "GET" and path == "/api/v1/studies/STUDY1/":
            return 200, {"id": "STUDY1", "status": self.study_status}
        if method == "POST" and path == "/api/v1/studies/STUDY1/transition/":
            if body != {"action": "PUBLISH"}:
                return self._bad(f"study transition body {body}")
            self.study_status = "ACTIVE"
            return 200, {"id": "STUDY1", "status": "ACTIVE"}
        if method == "GET" and path == "/api/v1/studies/STUDY1/submissions/":
            return 200, {"results": self.submissions, "_links": {"next": {"href": None}}}
        m = re.fullmatch(r"/api/v1/submissions/([^/]+)/transition/", path)
        if method == "POST" and m:
            action = body.get("action")
            if action not in ("APPROVE", "REJECT"):
                return self._bad(f"submission transition action {action!r}")
            if action == "REJECT" and (
                len(body.get("message", "")) < 100 or body.get("rejection_category") not in REJECTION_CATEGORIES
            ):
                return self._bad("REJECT needs a message of 100+ characters and a rejection_category")
            return 200, {"id": m.group(1), "status": action}
        if method == "PATCH" and path == "/api/v1/studies/STUDY1/":
            if set(body) != {"total_available_places"} or not isinstance(body["total_available_places"], int):
                return self._bad(f"study update {body}")
            return 200, {"id": "STUDY1", **body}
        if method == "POST" and path == "/api/v1/submissions/bonus-payments/":
            lines = body.get("csv_bonuses", "")
            if not isinstance(body.get("study_id"), str) or not re.fullmatch(r"([^,\n]+,\d+\.\d{2}\n)+", lines):
                return self._bad(f"bonus set-up body {body}")
            bulk = f"BULK{len(self.bulks) + 1}"
            self.bulks[bulk] = lines
            return 201, {"id": bulk, "study": body["study_id"], "total_amount": 0}
        m = re.fullmatch(r"/api/v1/bulk-bonus-payments/([^/]+)/pay/", path)
        if method == "POST" and m:
            if m.group(1) not in self.bulks:
                return self._bad(f"no bulk bonus payment {m.group(1)}")
            self.paid.append(m.group(1))  # paid, whatever we answer next
            if self.fail_pay:
                self.fail_pay -= 1
                return 502, {"error": "gateway timeout after paying"}
            return 202, {}
        if method == "POST" and path == "/api/v1/participant-groups/":
            if not isinstance(body.get("name"), str) or not isinstance(body.get("workspace_id"), str):
                return self._bad(f"participant group body {body}")
            gid = f"GROUP{len(self.groups) + 1}"
            self.groups[gid] = set()
            return 201, {"id": gid, "name": body["name"]}
        m = re.fullmatch(r"/api/v1/participant-groups/([^/]+)/participants/", path)
        if method == "POST" and m:
            ids = body.get("participant_ids")
            if m.group(1) not in self.groups or not isinstance(ids, list) or not ids:
                return self._bad(f"participant group members {path} {body}")
            self.groups[m.group(1)].update(ids)
            return 200, {"results": [{"participant_id": i} for i in ids]}
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


# --- Prolific first-class --------------------------------------------------------------------------------------


@pytest.fixture
def workspace(settings):
    settings.PROLIFIC_WORKSPACE_ID = "WS1"
    settings.PROLIFIC_FILTERS = {"countries": ["1"], "min_approval_rate": 98}


def _study_body(fake):
    return next(r[2] for r in fake.requests if r[0] == "POST" and r[1] == "/api/v1/studies/")


def test_studies_carry_filters_a_measured_time_and_a_fair_reward(
    dataset, batches, prolific_server, no_sleep, workspace
):
    batch = batches[0]
    n_clips = batch.items.count()
    with pytest.raises(ValidationError) as err:  # 30 cents for 3 minutes: $6.00/h
        batches_publish(dataset, batches=[batch], backend="prolific", reward=Decimal("0.30"))
    text = "\n".join(err.value.details)
    assert "$6.00/h, below Prolific's minimum of $8.00/h; offer at least $0.40" in text
    assert f"{n_clips} clips x 0.75 min per clip" in text and "PROLIFIC_MINUTES_PER_CLIP" in text
    assert not any(r[1] == "/api/v1/studies/" for r in prolific_server.requests)
    batches_publish(dataset, batches=[batch], backend="prolific")  # default reward: the minimum hourly pay
    body = _study_body(prolific_server)
    assert body["estimated_completion_time"] == 3 and body["reward"] == 40
    assert body["filters"] == [
        {"filter_id": "approval_rate", "selected_range": {"lower": 98}},
        {"filter_id": "approval_numbers", "selected_range": {"lower": 50}},
        {"filter_id": "current-country-of-residence", "selected_values": ["1"]},
        {"filter_id": "participant_group_blocklist", "selected_values": ["GROUP1"]},
    ]
    assert prolific_server.violations == []


def test_the_estimate_follows_measured_work(dataset, batches, prolific_server, no_sleep, taxonomy):
    from crowd.models import Worker
    from crowd.services.costs import prolific_estimate

    assert prolific_estimate(dataset, 10).minutes == 8  # 0.75 min per clip, the setting
    batch = batches[0]
    for i in range(5):  # five timed in-house submissions at 2 minutes per clip
        worker = Worker.objects.create(backend="inhouse", external_id=f"ann{i}")
        Assignment.objects.create(
            batch=batch,
            worker=worker,
            backend="inhouse",
            status="approved",
            work_seconds=batch.items.count() * 120,
        )
    est = prolific_estimate(dataset, 10)
    assert (est.minutes, est.measured_from) == (20, 5)


def test_one_backend_per_batch(dataset, batches, prolific_server, no_sleep, mturk_stub):
    batch = batches[0]
    batches_publish(dataset, batches=[batch], backend="prolific", reward=Decimal("2.00"))
    with pytest.raises(ValidationError) as err:
        batches_publish(dataset, batches=[batch], backend="mturk", reward=Decimal("1.00"))
    assert f"batch {batch.uuid} is already published on Prolific (study STUDY1, open)" in "\n".join(err.value.details)
    assert Hit.objects.count() == 1  # and the stub was asked nothing


def test_sync_rejects_as_failed_check_frees_returned_places_and_pays_bonuses_once(
    dataset, batches, taxonomy, prolific_server, no_sleep
):
    from crowd.models import Bonus
    from crowd.services.sync import bonus_create

    batch = batches[0]
    batches_publish(dataset, batches=[batch], backend="prolific", reward=Decimal("2.00"))
    for pid, sid, good in (("P1", "S1", True), ("P2", "S2", False)):
        fill_assignment(
            assignment_start(batch, backend="prolific", worker_external_id=pid, external_assignment_id=sid),
            taxonomy,
            good=good,
        )
    gone = assignment_start(batch, backend="prolific", worker_external_id="P3", external_assignment_id="S3")
    prolific_server.submissions = [
        {"id": "S1", "participant_id": "P1", "status": "AWAITING REVIEW"},
        {"id": "S2", "participant_id": "P2", "status": "AWAITING REVIEW"},
        {"id": "S3", "participant_id": "P3", "status": "RETURNED"},
        {"id": "S4", "participant_id": "P4", "status": "TIMED-OUT"},
    ]
    summary = marketplace_sync()
    assert (summary["approved"], summary["rejected"], summary["released"]) == (1, 1, 2)
    reject = next(r[2] for r in prolific_server.requests if r[1] == "/api/v1/submissions/S2/transition/")
    assert reject["rejection_category"] == "FAILED_CHECK" and "quality-control clips" in reject["message"]
    gone.refresh_from_db()
    assert gone.status == "rejected" and "returned on Prolific" in gone.decision_reason
    assert not any("/S3/" in r[1] or "/S4/" in r[1] for r in prolific_server.requests)  # nothing sent for them
    # the place of the rejected submission is re-opened; the returned ones Prolific re-opened itself
    patches = [r[2] for r in prolific_server.requests if r[0] == "PATCH"]
    assert patches == [{"total_available_places": 4}]
    # a bonus: set up, then paid once
    approved = Assignment.objects.get(external_assignment_id="S1")
    bonus = bonus_create(approved, "0.50", "Great accuracy on the check clips")
    assert marketplace_sync()["bonuses_paid"] == 1
    assert prolific_server.bulks == {"BULK1": "P1,0.50\n"} and prolific_server.paid == ["BULK1"]
    bonus.refresh_from_db()
    assert (bonus.status, bonus.external_id) == ("paid", "BULK1")
    marketplace_sync()
    assert prolific_server.paid == ["BULK1"]
    # an ambiguous answer to "pay" (Prolific paid, the answer was lost): never paid again by itself
    second = bonus_create(approved, "0.25", "A second bonus")
    prolific_server.fail_pay = 1
    marketplace_sync()
    marketplace_sync()
    assert prolific_server.paid == ["BULK1", "BULK2"]
    second.refresh_from_db()
    assert second.status == Bonus.SENDING and "check the bulk bonus BULK2 on Prolific" in second.error
    assert prolific_server.violations == []


def test_blocked_participants_join_the_block_list_group(
    dataset, batches, taxonomy, prolific_server, no_sleep, workspace
):
    from crowd.models import Worker

    batches_publish(dataset, batches=[batches[0]], backend="prolific", reward=Decimal("2.00"))
    a = assignment_start(batches[0], backend="prolific", worker_external_id="PBAD", external_assignment_id="S9")
    Worker.objects.filter(pk=a.worker_id).update(is_blocked=True, blocked_reason="mean F1 0.05")
    summary = marketplace_sync()
    assert summary["blocked"] == 1 and prolific_server.groups["GROUP1"] == {"PBAD"}
    assert marketplace_sync().get("blocked", 0) == 0


def test_passed_gold_only_studies_use_an_allow_list(dataset, batches, prolific_server, no_sleep, workspace):
    from crowd.models import Worker
    from crowd.services.publish import HitSettings

    hs = HitSettings.from_settings(passed_gold_only=True)
    with pytest.raises(ValidationError, match="no Prolific participant has passed the check clips"):
        batches_publish(dataset, batches=[batches[0]], backend="prolific", reward=Decimal("2.00"), hit_settings=hs)
    Worker.objects.create(backend="prolific", external_id="PGOOD", mean_catch_f1=0.9, n_scored=2)
    Worker.objects.create(backend="prolific", external_id="PPOOR", mean_catch_f1=0.1, n_scored=2)
    batches_publish(dataset, batches=[batches[0]], backend="prolific", reward=Decimal("2.00"), hit_settings=hs)
    allow = next(f for f in _study_body(prolific_server)["filters"] if f["filter_id"] == "participant_group_allowlist")
    assert prolific_server.groups[allow["selected_values"][0]] == {"PGOOD"}
