"""The production smoke test: the steps run in this order, on one stack (smoke/conftest.py), as people use it.

1. The stack is up: health, readiness, static files (WhiteNoise, hashed and compressed), API docs served locally,
   every service's container healthcheck.
2. An admin logs in, creates a dataset, imports clips into S3 storage (uploaded files and an s3:// URL), builds
   batches and publishes a dry run.
3. A crowd worker (an MTurk arrival) opens the HIT page, plays the clips through presigned URLs of the public S3
   endpoint, answers and submits; an in-house annotator does the same batch after logging in.
4. The admin approves the work (the in-house one; the MTurk one waits for the marketplace to report it), creates
   a release in the background and exports it.
5. /metrics answers the token only and counts what happened; logs are JSON lines with request ids.
6. The database drops every connection (as a PostgreSQL restart does): no request fails, tasks go on.
7. The Celery worker is killed with SIGKILL in the middle of a task: the task comes back to a new worker and
   finishes once.
"""

from __future__ import annotations

import csv
import io
import json
import re
import signal
import time

import psycopg
import pytest
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.support.ui import Select, WebDriverWait

from catalog.core.media import make_synthetic_clip

TIMEOUT = 60


@pytest.fixture(scope="module")
def admin(stk):
    driver = stk.browser("admin")
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def worker(stk):
    driver = stk.browser("worker")
    yield driver
    driver.quit()


def wait(driver, condition, message, timeout=TIMEOUT):
    ignored = (StaleElementReferenceException, NoSuchElementException)  # pages that refresh themselves
    return WebDriverWait(driver, timeout, poll_frequency=0.1, ignored_exceptions=ignored).until(condition, message)


def css(driver, selector):
    return driver.find_element("css selector", selector)


def messages(driver) -> str:
    return " | ".join(e.text for e in driver.find_elements("css selector", "ul.messagelist li"))


def test_1_stack_is_up_and_serves_static_files(stk):
    http = stk.http()
    r = http.get(stk.url("/healthz"))
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    r = http.get(stk.url("/readyz"))
    assert r.status_code == 200, r.text
    assert r.json()["checks"] == {"database": {"ok": True}, "broker": {"ok": True}, "storage": {"ok": True}}
    assert r.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    # production settings: plain http is sent to https, and the session cookie is Secure
    assert (
        "Apply all migrations" in stk.state["init_output"]
        and "class list: loaded 309 classes" in stk.state["init_output"]
    )
    assert "media bucket 'avcrowd-smoke': created" in stk.state["init_output"]

    # the pages' CSS and the admin's are served by WhiteNoise: hashed names, cached for good, compressed
    for page_path, asset in (
        ("/", r"/static/frontend/site\.[0-9a-f]{12}\.css"),
        ("/admin/login/", r"/static/admin/css/base\.[0-9a-f]{12}\.css"),
    ):
        found = re.search(f'href="({asset})"', http.get(stk.url(page_path)).text)
        assert found, f"{page_path} does not link {asset}"
        r = http.get(stk.url(found.group(1)), headers={"Accept-Encoding": "gzip"})
        assert (
            r.status_code == 200
            and r.headers["Content-Encoding"] == "gzip"
            and "immutable" in r.headers["Cache-Control"]
        )

    # Swagger UI and Redoc come from our own static files, not a CDN
    for path in ("/api/docs/", "/api/redoc/"):
        r = http.get(stk.url(path))
        assert r.status_code == 200
        assets = re.findall(r'(?:src|href)="(/static/drf_spectacular_sidecar/[^"]+)"', r.text)
        assert assets and "cdn" not in r.text.lower(), r.text[:500]
        for asset in assets:
            assert http.get(stk.url(asset)).status_code == 200, asset

    # the container healthchecks of docker-compose.yml, run against these processes
    for service in ("web", "worker", "beat"):
        out = stk.healthcheck(service)
        assert out.returncode == 0, f"{service}: {out.stdout}{out.stderr}"


def test_2_admin_imports_clips_into_s3_builds_batches_and_publishes_a_dry_run(stk, admin, tmp_path):
    # one clip is already in the bucket and imported by its s3:// URL; two are uploaded through the admin
    external = make_synthetic_clip(tmp_path / "smoke_c.mp4", seconds=1.0, seed=3, tone_hz=523)
    stk.s3().upload_file(str(external), stk.ports.bucket, "external/smoke_c.mp4")
    uploads = [
        make_synthetic_clip(tmp_path / f"{n}.mp4", seconds=1.0, seed=i) for i, n in enumerate(("smoke_a", "smoke_b"))
    ]
    listing = tmp_path / "clips.csv"
    listing.write_text(
        "video_id,url,original_label\n"
        "smoke_a,smoke_a.mp4,dog barking\n"
        "smoke_b,smoke_b.mp4,cat meowing\n"
        f"smoke_c,s3://{stk.ports.bucket}/external/smoke_c.mp4,church bell ringing\n"
    )

    admin.get(stk.url("/admin/login/?next=/admin/"))
    css(admin, "#id_username").send_keys(stk.admin[0])
    css(admin, "#id_password").send_keys(stk.admin[1])
    css(admin, "input[type=submit]").click()
    wait(admin, lambda d: "Site administration" in d.page_source, "the admin login failed")
    session_cookie = admin.get_cookie("sessionid")
    assert session_cookie["secure"] and session_cookie["sameSite"] == "Lax"  # no session rides a cross-site request

    admin.get(stk.url("/admin/catalog/dataset/add/"))
    for field, value in (
        ("name", "smoke"),
        ("budget_usd", "20"),
        ("review_window_hours", "24"),  # submitted work waits for the admin's decision
        ("batch_size", "3"),
        ("gold_per_batch", "0"),
        ("annotations_per_clip", "2"),
    ):
        box = css(admin, f"#id_{field}")
        box.clear()
        box.send_keys(value)
    css(admin, "input[name=_save]").click()
    wait(admin, lambda d: "was added successfully" in messages(d), "the dataset was not created")

    admin.get(stk.url("/admin/catalog/dataset/"))
    css(admin, "#import-clips-link").click()
    css(admin, "#id_dataset").send_keys("smoke")
    css(admin, "#id_media").send_keys("\n".join(str(p) for p in uploads))
    css(admin, "#id_csv").send_keys(str(listing))
    css(admin, "#import-clips-submit").click()
    wait(admin, lambda d: "Imported 3 clip(s) into dataset smoke." in messages(d), f"import: {messages(admin)}")
    stored = [o["Key"] for o in stk.s3().list_objects_v2(Bucket=stk.ports.bucket).get("Contents", [])]
    assert any(k.startswith("clips/") and k.endswith("smoke_a.mp4") for k in stored), stored
    assert any(k.startswith("clips/") and k.endswith("smoke_b.mp4") for k in stored), stored

    admin.get(stk.url("/admin/crowd/batch/"))
    css(admin, "#create-batches-link").click()
    Select(css(admin, "#id_dataset")).select_by_visible_text("smoke")
    css(admin, "#create-batches-submit").click()
    wait(admin, lambda d: "Created 1 batch(es) in dataset smoke." in messages(d), f"batches: {messages(admin)}")

    # the publish action's first page is the dry run: the plan and its cost, nothing sent
    css(admin, "input.action-select").click()
    Select(css(admin, "select[name=action]")).select_by_value("publish_to_marketplace")
    css(admin, "button[name=index]").click()
    wait(admin, lambda d: d.find_elements("id", "publish-dry-run"), "the publish page did not open")
    css(admin, "#publish-dry-run").click()
    wait(admin, lambda d: d.find_elements("css selector", "#publish-estimate, #publish-error"), "no estimate")
    assert not admin.find_elements("id", "publish-error"), css(admin, "#publish-error").text
    estimate = css(admin, "#publish-estimate").text
    assert estimate.startswith("1 HIT(s) on mturk sandbox") and "3 clips (0 gold)" in estimate, estimate
    assert "within budget" in estimate, estimate
    assert stk.sql("SELECT count(*) FROM annotation_hit")[0][0] == 0, "a dry run created a HIT"
    stk.state["batch"] = str(stk.sql("SELECT uuid FROM annotation_batch")[0][0])


def _network_events(driver) -> list[dict]:
    out = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"].startswith("Network."):
            out.append(message)
    return out


def _hit_state(driver):
    return driver.find_element("id", "hit-app").get_attribute("data-state")


def _label_batch(driver) -> int:
    """On an open HIT page: play every clip, answer it (tick its first proposal as audible), submit."""
    wait(driver, lambda d: _hit_state(d) != "loading", "the HIT page did not load")
    if _hit_state(driver) == "instructions":
        css(driver, "#btn-start").click()
    wait(driver, lambda d: _hit_state(d) == "clip", "the clip view did not open")
    answered = 0
    while _hit_state(driver) == "clip":
        try:
            wait(driver, lambda d: d.execute_script("return !document.getElementById('video').paused"), "", 3)
        except Exception:  # autoplay refused: press Play like a worker would
            css(driver, "#btn-play").click()
        wait(
            driver,
            lambda d: d.find_element("id", "play-state").get_attribute("data-played") == "true",
            "the clip never played",
        )
        for fieldset in driver.find_elements("css selector", "#meta-form fieldset"):
            fieldset.find_element("css selector", 'input[value="no"]').click()
        css(driver, 'input[aria-label$=" audible"]').click()
        answered += 1
        css(driver, "#btn-next").click()
    wait(driver, lambda d: _hit_state(d) == "review", "the review screen did not open")
    wait(driver, lambda d: css(d, "#save-status").text == "All changes saved", "the answers were not saved")
    css(driver, "#btn-submit").click()
    return answered


def test_3_a_worker_plays_presigned_clips_answers_and_submits(stk, worker):
    batch = stk.state["batch"]
    base = stk.ports.base_url
    # the HIT page's ES modules: hashed names, and app.js imports api.js by its hashed name too (a new app.js never
    # meets a cached old api.js)
    http = stk.http()
    hashed = re.search(r'src="(/static/frontend/hit/app\.[0-9a-f]{12}\.js)"', http.get(f"{base}/hit/{batch}/").text)
    assert hashed, "the HIT page does not load a hashed app.js"
    r = http.get(stk.url(hashed.group(1)), headers={"Accept-Encoding": "gzip"})
    assert (
        r.status_code == 200 and r.headers["Content-Encoding"] == "gzip" and "immutable" in r.headers["Cache-Control"]
    )
    api_import = re.search(r'from "\./(api\.[0-9a-f]{12}\.js)"', r.text)
    assert api_import, "app.js imports api.js by its plain name"
    assert http.get(stk.url("/static/frontend/hit/" + api_import.group(1))).status_code == 200

    worker.get(
        f"{base}/hit/{batch}/?workerId=SMOKEWORKER1&assignmentId=SMOKEASSIGN1&hitId=SMOKEHIT1&turkSubmitTo={base}/demo"
    )
    assert _label_batch(worker) == 3
    wait(worker, lambda d: d.find_elements("id", "mturk-fields"), "the HIT was not handed back to 'MTurk'")
    assert "SMOKEASSIGN1" in css(worker, "#mturk-fields").text

    # the browser got the clips from the public S3 endpoint (presigned), both uploaded and s3:// ones
    public = f"https://localhost:{stk.ports.s3}/{stk.ports.bucket}/"
    events = _network_events(worker)
    media = {}
    for e in events:
        if e["method"] == "Network.requestWillBeSent" and e["params"]["request"]["url"].startswith(public):
            media[e["params"]["requestId"]] = e["params"]["request"]["url"]
    statuses = {
        e["params"]["requestId"]: e["params"]["response"]["status"]
        for e in events
        if e["method"] == "Network.responseReceived" and e["params"]["requestId"] in media
    }
    fetched = {url.split("?")[0].rsplit("/", 1)[1]: statuses.get(rid) for rid, url in media.items()}
    assert {"smoke_a.mp4", "smoke_b.mp4", "smoke_c.mp4"} <= set(fetched), fetched
    assert all(status in (200, 206) for status in fetched.values()), fetched
    assert all("X-Amz-Signature=" in url for url in media.values())
    rows = stk.sql(
        "SELECT a.status, count(c.id) FROM annotation_assignment a JOIN annotation_clipanswer c "
        "ON c.assignment_id = a.id WHERE a.external_assignment_id = 'SMOKEASSIGN1' GROUP BY a.status"
    )
    assert rows == [("submitted", 3)], rows

    # an in-house annotator labels the same batch after logging in (work a login produced needs no marketplace);
    # in-house annotators label only the batches assigned to them (what POST /api/marketplace/inhouse/assign/ does)
    stk.sql(
        "INSERT INTO annotation_inhousetask (batch_id, user_id, created_at) SELECT b.id, u.id, now() "
        "FROM annotation_batch b, auth_user u WHERE b.uuid = %s::uuid AND u.username = %s RETURNING id",
        batch,
        stk.annotator[0],
    )
    worker.delete_all_cookies()
    worker.get(stk.url(f"/accounts/login/?next=/hit/{batch}/"))
    css(worker, "#id_username").send_keys(stk.annotator[0])
    css(worker, "#id_password").send_keys(stk.annotator[1])
    css(worker, "[type=submit]").click()
    wait(worker, lambda d: f"/hit/{batch}/" in d.current_url, "the annotator's login did not lead to the HIT")
    assert _label_batch(worker) == 3
    wait(worker, lambda d: _hit_state(d) == "done", "the in-house submission did not finish")


def _wait_operation_done(stk, driver):
    wait(
        driver,
        lambda d: d.find_elements("css selector", "#op-result") or "failed" in css(d, "#op-status").text,
        "the operation did not finish",
        timeout=90,
    )
    assert not driver.find_elements("css selector", "#op-status") or "failed" not in css(driver, "#op-status").text, (
        css(driver, "#op-message").text
    )


def test_4_release_created_in_the_background_and_exported(stk, admin):
    # both submissions approved at once: the in-house one is; the "MTurk" one is refused, because no marketplace
    # has reported it (work a stranger submits is not paid or merged before that)
    admin.get(stk.url("/admin/crowd/assignment/"))
    css(admin, "#action-toggle").click()
    Select(css(admin, "select[name=action]")).select_by_value("approve_override")
    css(admin, "input[name=reason]").send_keys("smoke test: checked by hand")
    css(admin, "button[name=index]").click()
    wait(admin, lambda d: "1 assignment(s) set to approved." in messages(d), f"approve: {messages(admin)}")
    assert "this mturk assignment is submitted but unverified" in messages(admin)

    admin.get(stk.url("/releases/"))
    Select(css(admin, "select[name=dataset]")).select_by_visible_text("smoke")
    css(admin, "input[name=name]").send_keys("v1")
    css(admin, "input[name=k]").send_keys("1")  # one approved annotator per clip so far
    css(admin, "form[action='/releases/new/'] button[type=submit]").click()
    wait(admin, lambda d: re.search(r"/ops/operations/\d+/|/releases/\d+/", d.current_url), "no redirect")
    if "/ops/operations/" in admin.current_url:  # running in the worker: the page refreshes itself until done
        _wait_operation_done(stk, admin)
        css(admin, "#op-result").click()
    wait(admin, lambda d: re.search(r"/releases/\d+/", d.current_url), "the release page did not open")
    release_url = admin.current_url

    Select(css(admin, "select[name=format]")).select_by_visible_text("vggsounder-csv")
    css(admin, "form[action$='/exports/'] button[type=submit]").click()
    link = wait(
        admin,
        lambda d: d.find_elements("css selector", "table[aria-label=exports] td.link a"),
        "the export did not finish",
    )[0]
    http = stk.http()
    http.cookies.set("sessionid", admin.get_cookie("sessionid")["value"])
    r = http.get(link.get_attribute("href"))
    assert r.status_code == 200, r.text[:300]
    rows = list(csv.DictReader(io.StringIO(r.content.decode())))
    # what the worker ticked (auto-added synonyms and superclasses may come with it, e.g. dog bow-wow)
    assert {(row["video_id"], row["label"], row["modality"]) for row in rows} >= {
        ("smoke_a", "dog barking", "A"),
        ("smoke_b", "cat meowing", "A"),
        ("smoke_c", "church bell ringing", "A"),
    }, rows
    stk.state["release_url"] = release_url


def _metrics(stk, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return stk.http().get(stk.url("/metrics"), headers=headers)


def _sample(text: str, name: str, **labels) -> float | None:
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_5_metrics_need_the_token_and_count_what_happened_and_logs_are_json(stk):
    assert _metrics(stk).status_code == 401
    assert _metrics(stk, "not-the-token").status_code == 401
    r = _metrics(stk, stk.ports.metrics_token)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    text = r.text
    assert _sample(text, "avcrowd_answer_saves_total", kind="answer") >= 3
    assert _sample(text, "avcrowd_http_request_duration_seconds_count", route="api/hit/<str:batch_uuid>/session") >= 1
    assert _sample(text, "avcrowd_celery_tasks_total", task="labels.tasks.release_create_task", state="SUCCESS") == 1
    assert _sample(text, "avcrowd_celery_tasks_total", task="labels.tasks.release_export_task", state="SUCCESS") == 1
    assert _sample(text, "avcrowd_celery_queue_length", queue="default") == 0
    assert _sample(text, "avcrowd_spend_usd", dataset="smoke", kind="paid") == 0
    assert "# TYPE avcrowd_open_hits gauge" in text
    assert _sample(text, "avcrowd_operations_running", kind="release") == 0

    # one JSON object per line with a request id; each request logged once
    r = stk.http().get(stk.url("/healthz"), headers={"X-Request-ID": "smoke-probe-1"})
    assert r.headers["X-Request-ID"] == "smoke-probe-1"
    time.sleep(0.5)
    lines = stk.log_text("web").splitlines()
    records = [json.loads(line) for line in lines]  # every line of the web log parses
    probe = [rec for rec in records if rec["request_id"] == "smoke-probe-1"]
    assert len(probe) == 1 and probe[0]["logger"] == "avcrowd.request" and "GET /healthz 200" in probe[0]["message"]


def test_6_requests_and_tasks_go_on_after_the_database_drops_every_connection(stk, admin, worker):
    """What a PostgreSQL restart does to the processes: every connection they hold is closed by the server.
    Persistent connections are checked before use (CONN_HEALTH_CHECKS), so no request fails for it.

    Like a restart (`pg_ctl restart` returns once the old server's processes have exited), the test goes on once
    the ended backends are gone: pg_terminate_backend only signals a backend, and a request that reaches its
    connection before the backend has acted on the signal meets the goodbye on its first query whatever check ran
    before it (with Django's own SELECT 1 too, when the signal lands between the check and the query)."""
    http = stk.http()
    http.cookies.set("sessionid", admin.get_cookie("sessionid")["value"])
    paths = ["/readyz", "/admin/", "/releases/", "/ops/"]
    for path in paths * 3:  # every gunicorn thread that serves these now holds a connection
        assert http.get(stk.url(path)).status_code == 200, path
    dropped = stk.sql(
        "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "  # waits up to 10 s for each to exit
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    assert len(dropped) >= 2, "the web and worker processes held no connection to drop"
    statuses = [http.get(stk.url(path)).status_code for path in paths * 10]
    assert statuses == [200] * len(statuses), statuses
    # and the worker: its next task runs on a fresh connection
    admin.get(stk.state["release_url"])
    Select(css(admin, "select[name=format]")).select_by_visible_text("jsonl")
    css(admin, "form[action$='/exports/'] button[type=submit]").click()
    wait(
        admin,
        lambda d: any(
            row.find_element("css selector", "td.status").text == "done"
            for row in d.find_elements("css selector", "table[aria-label=exports] tr[data-export]")
            if row.find_element("css selector", "td").text == "jsonl"
        ),
        "the export after the database restart did not finish",
    )


def test_7_a_worker_killed_mid_task_its_task_is_redelivered_and_finishes_once(stk, admin):
    """SIGKILL to the whole worker (main process and pool) while a release is being written: the message was
    not acknowledged (acks_late), so once CELERY_VISIBILITY_TIMEOUT has passed a new worker gets it again."""
    lock = psycopg.connect(stk.ports.database_url.replace("postgres://", "postgresql://"))
    try:
        # hold the release table: the task reads, merges, and then waits on its INSERT, in the middle of its work
        lock.execute("LOCK TABLE annotation_release IN EXCLUSIVE MODE")
        admin.get(stk.url("/releases/"))
        Select(css(admin, "select[name=dataset]")).select_by_visible_text("smoke")
        css(admin, "input[name=name]").send_keys("v2")
        css(admin, "input[name=k]").send_keys("1")
        css(admin, "form[action='/releases/new/'] button[type=submit]").click()
        wait(admin, lambda d: "/ops/operations/" in d.current_url, "the release was not started in the background")
        op_id = int(re.search(r"/ops/operations/(\d+)/", admin.current_url).group(1))
        stk.wait_until(
            lambda: stk.sql(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query LIKE 'INSERT INTO %%annotation_release%%'"
            ),
            "the task never reached its INSERT",
            timeout=60,
        )
        stk.kill("worker", signal.SIGKILL)
        killed_at = time.time()
    finally:
        lock.rollback()
        lock.close()
    assert stk.sql("SELECT status FROM annotation_operation WHERE id = %s", op_id) == [("running",)]
    # the killed worker's half-done insert is rolled back with its connection
    stk.wait_until(
        lambda: (
            not stk.sql(
                "SELECT 1 FROM pg_stat_activity "
                "WHERE query LIKE 'INSERT INTO %%annotation_release%%' AND state <> 'idle'"
            )
        ),
        "the killed worker's transaction is still open",
        timeout=30,
    )
    assert stk.sql("SELECT count(*) FROM annotation_release WHERE name = 'v2'") == [(0,)]

    stk.start("worker", name="worker-2")  # compose's restart: unless-stopped
    stk.wait_until(
        lambda: stk.sql("SELECT status FROM annotation_operation WHERE id = %s", op_id) != [("running",)],
        "the task was not redelivered",
        timeout=120,
        interval=1,
    )
    redelivered_after = time.time() - killed_at
    status, message = stk.sql("SELECT status, message FROM annotation_operation WHERE id = %s", op_id)[0]
    assert status == "done", message
    assert stk.sql("SELECT count(*) FROM annotation_release WHERE name = 'v2'") == [(1,)]

    def events(name):  # (event, task id) of the release task in a worker's log
        pattern = re.compile(r"Task labels\.tasks\.release_create_task\[([0-9a-f-]+)\] (received|succeeded)")
        return [(m.group(2), m.group(1)) for r in stk.log_records(name) if (m := pattern.search(r["message"]))]

    first, second = events("worker"), events("worker-2")
    task_id = first[-1][1]  # the one the first worker had taken when it was killed
    assert first[-1] == ("received", task_id) and ("succeeded", task_id) not in first, first
    assert second == [("received", task_id), ("succeeded", task_id)], second  # delivered again, done once
    stk.timings["redelivered_after"] = redelivered_after
    stk.wait_healthy("worker", name="worker-2")
    print(f"\nsmoke: task redelivered {redelivered_after:.0f} s after the SIGKILL (visibility timeout 20 s)")
