"""The HIT page in real headless Chromium against the live server and the real /api/hit/ endpoints."""

import pytest
from selenium.webdriver.common.keys import Keys

from crowd.models import Assignment, ClipAnswer, Worker
from tests.browser import urls as test_urls
from tests.browser.conftest import GOLD_VIDEO, wait_for

pytestmark = pytest.mark.browser

MTURK = {"hitId": "HIT1", "workerId": "WORKER1"}


def answers_by_video(assignment):
    return {a.clip.video_id: a for a in ClipAnswer.objects.filter(assignment=assignment).select_related("clip")}


def ticked(answer):
    return {
        (label["name"], label["audible"], label["visible"])
        for label in answer.labels
        if label["audible"] or label["visible"]
    }


def test_worker_labels_a_batch_with_mouse_and_keyboard_and_it_is_handed_to_mturk(hit_page, hit_batch, live_server):
    page = hit_page.open(hit_batch, assignmentId="ASSIGN1", turkSubmitTo=live_server.url, **MTURK)
    # first visit: the instructions, with the shortcuts
    assert page.state() == "instructions"
    assert "Keyboard shortcuts" in page.text("view-instructions")
    page.start()
    assert page.progress() == "Clip 1 of 4"
    videos = []

    # clip 1, by mouse. Moving on is refused until the questions are answered.
    page.wait_played()
    page.el("btn-next").click()
    assert page.progress() == "Clip 1 of 4"
    assert "Before moving on" in page.text("message") and "background music" in page.text("message")
    page.answer_meta((True, False, False))
    page.box("dog barking audible").click()
    page.box("dog barking visible").click()
    videos.append(page.driver.find_element("id", "video").get_attribute("data-video-id"))
    page.el("btn-next").click()
    page.wait(lambda d: page.progress() == "Clip 2 of 4")

    # clip 2, by keyboard: "/" opens the search, type-ahead by word match, arrows + Enter add, Escape leaves.
    page.wait_played()
    page.key("/")
    search = page.el("class-search")
    assert page.driver.switch_to.active_element == search
    search.send_keys("cow low")
    options = page.driver.find_elements("css selector", "#search-results [role=option]")
    assert options and options[0].text == "cow lowing"
    search.send_keys(Keys.ENTER)
    page.wait(lambda d: page.box("cow lowing audible"))
    search.send_keys("organ")  # substring match, then pick the second hit with the arrow key
    names = [o.text for o in page.driver.find_elements("css selector", "#search-results [role=option]")]
    assert len(names) >= 2 and all("organ" in n for n in names)
    search.send_keys(Keys.ARROW_DOWN, Keys.ENTER)
    page.wait(lambda d: page.box(f"{names[1]} visible"))
    search.send_keys(Keys.ESCAPE)
    page.key(Keys.ARROW_RIGHT)  # shortcuts are back once the search box is left; Enter is not typed into it
    assert page.progress() == "Clip 2 of 4"  # questions not answered yet
    page.box("cow lowing audible").send_keys(Keys.SPACE)  # Space on a focused checkbox ticks it
    page.box(f"{names[1]} visible").send_keys(Keys.SPACE)
    page.box("dog barking audible").send_keys(Keys.SPACE)
    for fieldset in page.driver.find_elements("css selector", "#meta-form fieldset"):
        fieldset.find_element("css selector", 'input[value="no"]').send_keys(Keys.SPACE)
    page.driver.execute_script("document.activeElement.blur()")
    videos.append(page.driver.find_element("id", "video").get_attribute("data-video-id"))
    page.key(Keys.ARROW_LEFT)
    page.wait(lambda d: page.progress() == "Clip 1 of 4")
    assert page.box("dog barking visible").is_selected()
    page.key(Keys.ENTER)
    page.wait(lambda d: page.progress() == "Clip 2 of 4")
    assert page.box("cow lowing audible").is_selected()
    page.key(Keys.ARROW_RIGHT)
    page.wait(lambda d: page.progress() == "Clip 3 of 4")

    # clips 3 and 4: Space pauses and plays. The clips last 1 s and count as played at 90 %, so the
    # clip is rewound and slowed to a quarter speed first: otherwise it can reach its end (which
    # pauses it too) between the key press and the check, and Space's effect cannot be told apart.
    for n in (3, 4):
        page.wait_played()
        page.driver.execute_script(
            "const v = document.getElementById('video'); window.__media = []; v.pause(); v.currentTime = 0;"
            " v.playbackRate = 0.25;"
            "if (!v.dataset.logged) { v.dataset.logged = '1';"
            " for (const t of ['play', 'pause', 'ended']) v.addEventListener(t, () => window.__media.push(t)); }"
        )
        page.wait(
            lambda d: d.execute_script("return !document.getElementById('video').seeking"), "the rewind did not end"
        )
        page.driver.execute_script("window.__media = []")  # after the pause event of the rewind
        page.key(Keys.SPACE)
        page.wait(lambda d: d.execute_script("return window.__media.includes('play')"), "Space did not play")
        page.key(Keys.SPACE)
        page.wait(lambda d: d.execute_script("return window.__media.includes('pause')"), "Space did not pause")
        assert page.driver.execute_script("return window.__media") == ["play", "pause"], (
            "the clip paused by itself (it ended) instead of by Space"
        )
        page.answer_meta((False, n == 4, False))
        page.box("dog barking audible").click()
        videos.append(page.driver.find_element("id", "video").get_attribute("data-video-id"))
        page.key(Keys.ENTER)

    # review screen: every clip with its answers, no problems, then submit
    page.wait(lambda d: page.state() == "review")
    rows = page.driver.find_elements("css selector", "#review-rows tr")
    assert len(rows) == 4
    assert all(row.find_elements("css selector", "td")[4].text == "none" for row in rows)
    assert "cow lowing" in rows[1].text and names[1] in rows[1].text
    page.wait_saved()
    page.el("btn-submit").click()
    page.wait(lambda d: d.find_elements("id", "mturk-received"), "the MTurk hand-off form was not posted")

    # the marketplace got the assignment id by POST, and the answers are in the database
    submitted_to_mturk = Assignment.objects.get(external_assignment_id="ASSIGN1")
    # assignmentId and one answer field (MTurk asks for at least one): the avcrowd assignment
    assert test_urls.RECEIVED == [
        {"method": "POST", "assignmentId": "ASSIGN1", "avcrowdAssignment": str(submitted_to_mturk.uuid)}
    ]
    assignment = Assignment.objects.get(external_assignment_id="ASSIGN1")
    assert assignment.status in ("submitted", "approved") and assignment.worker.external_id == "WORKER1"
    assert assignment.work_seconds and assignment.work_seconds > 0
    answers = answers_by_video(assignment)
    assert [a for a in videos] == [item.clip.video_id for item in hit_batch.items.order_by("position")]
    assert set(answers) == set(videos)
    # played = real playback covered 90 % of the 1 s clip; the watch time is what that playback measured (a busy
    # machine delivers fewer timeupdate events, so the first slice of a clip may go uncounted)
    watched = {v: (a.played, a.watch_seconds) for v, a in answers.items()}
    assert all(played and seconds >= 0.5 for played, seconds in watched.values()), watched
    first, second, third, fourth = (answers[v] for v in videos)
    assert (first.background_music, first.voice_over, first.static_image) == (True, False, False)
    assert ticked(first) == {("dog barking", True, True)}
    assert ticked(second) == {("cow lowing", True, False), (names[1], False, True), ("dog barking", True, False)}
    assert (second.background_music, second.voice_over, second.static_image) == (False, False, False)
    assert ticked(third) == {("dog barking", True, False)} and fourth.voice_over is True
    # the gold clip (dog barking, AV) was scored: audible+visible gives F1 1, audible only 2/3
    assert GOLD_VIDEO in answers
    expected = 1.0 if answers[GOLD_VIDEO] is first else 2 / 3
    assert assignment.catch_f1 == pytest.approx(expected)


def test_reload_in_the_middle_restores_answers_and_position(hit_page, hit_batch):
    page = hit_page.open(hit_batch, assignmentId="ASSIGN2", turkSubmitTo="https://workersandbox.mturk.com", **MTURK)
    page.start()
    page.wait_played()
    page.answer_meta((False, True, False))
    page.box("cat meowing visible").click()
    page.el("btn-next").click()
    page.wait(lambda d: page.progress() == "Clip 2 of 4")
    page.wait_played()
    search = page.el("class-search")
    search.send_keys("barking")
    search.send_keys(Keys.ENTER)  # "dog barking" is proposed already, so the first hit is another class
    added = page.driver.find_elements("css selector", "#label-rows li.added")
    assert len(added) == 1
    added_name = added[0].get_attribute("data-name")
    assert "bark" in added_name and added_name != "dog barking"
    page.box(f"{added_name} audible").click()
    page.wait_saved()

    page.driver.refresh()
    page.wait(lambda d: page.state() == "clip", "a returning worker should land on the clip, not the instructions")
    assert page.progress() == "Clip 2 of 4"
    assert page.box(f"{added_name} audible").is_selected()
    assert page.el("play-state").get_attribute("data-played") == "true"  # played before the reload
    page.answer_meta((False, False, False))
    page.el("btn-prev").click()
    page.wait(lambda d: page.progress() == "Clip 1 of 4")
    assert page.box("cat meowing visible").is_selected() and not page.box("cat meowing audible").is_selected()
    checked = page.driver.find_elements("css selector", "#meta-form input:checked")
    assert [c.get_attribute("value") for c in checked] == ["no", "yes", "no"]
    page.wait_saved()
    answers = answers_by_video(Assignment.objects.get(external_assignment_id="ASSIGN2"))
    assert len(answers) == 2


def test_saves_made_offline_are_queued_and_retried_when_the_network_returns(hit_page, hit_batch):
    page = hit_page.open(hit_batch, assignmentId="ASSIGN3", turkSubmitTo="https://workersandbox.mturk.com", **MTURK)
    page.start()
    page.wait_played()
    page.wait_saved()
    page.driver.set_network_conditions(offline=True, latency=0, download_throughput=-1, upload_throughput=-1)
    try:
        page.answer_meta((True, True, False))
        page.box("dog barking audible").click()
        page.box("people whistling visible").click()
        page.wait(lambda d: page.save_status().startswith("Offline, will retry"), "no offline status shown")
        assignment = Assignment.objects.get(external_assignment_id="ASSIGN3")
        answer = ClipAnswer.objects.filter(assignment=assignment).first()
        assert answer is None or not ticked(answer)  # nothing arrived while offline
        queued = page.driver.execute_script(
            "return Object.keys(localStorage).filter(k => k.startsWith('avcrowd.hit.queue'))"
            ".map(k => localStorage.getItem(k)).join('')"
        )
        assert "people whistling" in queued  # kept in the browser, survives a reload
    finally:
        page.driver.set_network_conditions(offline=False, latency=0, download_throughput=-1, upload_throughput=-1)
    page.wait_saved(timeout=20)
    answer = ClipAnswer.objects.get(assignment=assignment)
    assert ticked(answer) == {("dog barking", True, False), ("people whistling", False, True)}
    assert (answer.background_music, answer.voice_over, answer.static_image) == (True, True, False)
    assert answer.played


def test_preview_shows_instructions_and_first_clip_and_stores_nothing(hit_page, hit_batch):
    page = hit_page.open(hit_batch, assignmentId="ASSIGNMENT_ID_NOT_AVAILABLE", hitId="HIT1")
    assert page.state() == "instructions"
    banner = page.el("preview-banner")
    assert banner.is_displayed() and "accept the hit to start" in banner.text.lower()
    page.start()
    assert page.progress() == "Clip 1 of 4"
    assert not page.box("dog barking audible").is_enabled()
    assert not page.el("btn-next").is_enabled()
    page.key(Keys.ENTER)
    page.key(Keys.ARROW_RIGHT)
    assert page.progress() == "Clip 1 of 4"
    assert page.driver.execute_script("return document.getElementById('video').currentSrc")
    assert Assignment.objects.count() == 0 and ClipAnswer.objects.count() == 0 and Worker.objects.count() == 0
    requests = page.driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name).filter(n => n.includes('/api/hit/'))"
    )
    assert requests and all("/session" in r for r in requests)  # no save was even attempted


def test_a_clip_that_does_not_load_is_reported_and_skipped_and_the_hit_can_be_submitted(
    hit_page, hit_batch, live_server
):
    """The media of one clip is gone from storage: the page says so, Next stays refused until the worker reports
    the clip, the report is saved and shown in the review, and the HIT is submitted."""
    import os

    from crowd.models import BatchItem

    items = list(BatchItem.objects.filter(batch=hit_batch).select_related("clip").order_by("position"))
    broken = next(i for i in items if not i.is_gold)
    os.remove(broken.clip.media.path)
    page = hit_page.open(hit_batch, assignmentId="ASSIGN9", turkSubmitTo=live_server.url, **MTURK)
    page.start()
    for n, item in enumerate(items, start=1):
        page.wait(lambda d, n=n: page.progress() == f"Clip {n} of 4")
        if item is not broken:
            page.wait_played()
            page.answer_meta()
            page.box("dog barking audible").click()
        else:
            page.wait(lambda d: page.el("video-error").is_displayed(), "the load error was not shown")
            assert "could not be loaded" in page.text("video-error")
            page.el("btn-next").click()
            assert page.progress() == f"Clip {n} of 4" and "play the clip" in page.text("message")
            page.el("btn-video-report").click()
            page.wait(lambda d: page.el("play-state").get_attribute("data-failed") == "true")
            assert page.text("play-state") == "Reported as not playing (skipped)"
            assert page.text("nav-hint") == ""
        page.el("btn-next").click()
    page.wait(lambda d: page.state() == "review", "the review screen did not open")
    row = page.driver.find_element("css selector", f'#review-rows tr[data-video-id="{broken.clip.video_id}"]')
    assert "reported as not playing" in row.text and "has-problems" not in (row.get_attribute("class") or "")
    page.wait_saved()
    page.el("btn-submit").click()
    page.wait(lambda d: d.find_elements("id", "mturk-received"), "the HIT was not submitted and handed to MTurk")
    submitted_to_mturk = Assignment.objects.get(external_assignment_id="ASSIGN9")
    # assignmentId and one answer field (MTurk asks for at least one): the avcrowd assignment
    assert test_urls.RECEIVED == [
        {"method": "POST", "assignmentId": "ASSIGN9", "avcrowdAssignment": str(submitted_to_mturk.uuid)}
    ]
    assignment = Assignment.objects.get(external_assignment_id="ASSIGN9")
    answers = answers_by_video(assignment)
    assert assignment.status != "in_progress" and len(answers) == 4
    assert answers[broken.clip.video_id].media_failed and not answers[broken.clip.video_id].played
    assert not any(a.media_failed for v, a in answers.items() if v != broken.clip.video_id)


def test_a_clip_whose_server_never_answers_offers_the_skip_after_the_timeout(hit_page, hit_batch, settings):
    """The clip's media host accepts the connection and then says nothing (no error ever comes): after
    HIT_MEDIA_TIMEOUT_SECONDS the page offers the same report-and-skip; coming back to the clip shows it again."""
    import socket
    import threading

    from catalog.models import Clip
    from crowd.models import BatchItem

    settings.HIT_MEDIA_TIMEOUT_SECONDS = 2.0
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held = []
    threading.Thread(target=lambda: [held.append(server.accept()) for _ in range(8)], daemon=True).start()
    first = BatchItem.objects.filter(batch=hit_batch).select_related("clip").order_by("position")[0]
    Clip.objects.filter(pk=first.clip.pk).update(
        media="", media_url=f"http://127.0.0.1:{server.getsockname()[1]}/c.mp4"
    )
    try:
        page = hit_page.open(
            hit_batch, assignmentId="ASSIGN10", turkSubmitTo="https://workersandbox.mturk.com", **MTURK
        )
        page.start()
        assert not page.el("video-error").is_displayed()
        page.wait(lambda d: page.el("video-error").is_displayed(), "no way out was offered for the stalled clip")
        assert page.text("video-error-text") == "The clip is taking too long to load."
        page.el("btn-instructions").click()  # away and back: the problem is shown again
        page.el("btn-start").click()
        page.wait(lambda d: page.el("video-error").is_displayed(), "the problem was not shown again")
        page.el("btn-video-report").click()
        page.el("btn-next").click()
        page.wait(lambda d: page.progress() == "Clip 2 of 4")
        page.wait_saved()
        answer = ClipAnswer.objects.get(assignment__external_assignment_id="ASSIGN10", clip=first.clip)
        assert answer.media_failed and not answer.played
    finally:
        server.close()
        for conn, _ in held:
            conn.close()


def test_unknown_batch_is_a_plain_not_found(browser, live_server):
    browser.get(f"{live_server.url}/hit/00000000-0000-4000-8000-000000000000/?workerId=W&assignmentId=A")
    assert "does not exist" in browser.find_element("tag name", "body").text


def test_answers_stay_saved_per_worker(hit_page, hit_batch):
    """A second worker on the same batch starts blank: the page restores answers per assignment, not per batch."""
    page = hit_page.open(hit_batch, assignmentId="ASSIGN4", turkSubmitTo="https://workersandbox.mturk.com", **MTURK)
    page.start()
    page.wait_played()
    page.box("cat meowing audible").click()
    page.wait_saved()
    page.open(
        hit_batch,
        assignmentId="ASSIGN5",
        hitId="HIT1",
        workerId="WORKER2",
        turkSubmitTo="https://workersandbox.mturk.com",
    )
    page.start()
    assert not page.box("cat meowing audible").is_selected()
    wait_for(lambda: Assignment.objects.filter(batch=hit_batch).count() == 2)


def test_a_full_batch_of_20_clips_by_keyboard_only(hit_page, transactional_db, taxonomy, clip_factory, live_server):
    from tests.browser.conftest import make_dataset

    _, batches = make_dataset(clip_factory, name="twenty", n_regular=19, batch_size=20, seconds=0.5)
    page = hit_page.open(batches[0], assignmentId="ASSIGN20", turkSubmitTo=live_server.url, **MTURK)
    page.key(Keys.ENTER)  # Enter leaves the instructions
    page.wait(lambda d: page.state() == "clip")
    for n in range(1, 21):
        assert page.progress() == f"Clip {n} of 20"
        page.wait_played()
        radios = page.driver.find_elements("css selector", '#meta-form input[value="no"]')
        for radio in radios:
            radio.send_keys(Keys.SPACE)
        if n % 2:
            page.box("cat meowing audible").send_keys(Keys.SPACE)
        radios[-1].send_keys(Keys.ENTER)  # Enter = next (the last clip opens the review)
    page.wait(lambda d: page.state() == "review")
    assert len(page.driver.find_elements("css selector", "#review-rows tr.has-problems")) == 0
    page.wait_saved()
    page.el("btn-submit").send_keys(Keys.ENTER)
    page.wait(lambda d: d.find_elements("id", "mturk-received"), "the MTurk hand-off form was not posted")
    assignment = Assignment.objects.get(external_assignment_id="ASSIGN20")
    answers = answers_by_video(assignment)
    assert len(answers) == 20 and all(a.played for a in answers.values())
    order = [item.clip.video_id for item in batches[0].items.order_by("position")]
    assert [bool(ticked(answers[v])) for v in order] == [n % 2 == 1 for n in range(1, 21)]

    # reopening a submitted HIT says so and does not post to MTurk again by itself
    page.open(batches[0], assignmentId="ASSIGN20", turkSubmitTo=live_server.url, **MTURK)
    assert page.state() == "done" and page.text("done-title") == "Already submitted"
    assert page.driver.find_element("css selector", "#mturk-form button").text == "Send to Mechanical Turk"
    assert len(test_urls.RECEIVED) == 1


def test_a_blocked_worker_is_told_why_and_nothing_is_started(hit_page, hit_batch):
    Worker.objects.create(backend="mturk", external_id="BLOCKED1", is_blocked=True, blocked_reason="low quality")
    page = hit_page.open(
        hit_batch,
        assignmentId="ASSIGN9",
        hitId="HIT1",
        workerId="BLOCKED1",
        turkSubmitTo="https://workersandbox.mturk.com",
    )
    assert page.state() == "error"
    assert "can no longer work on these tasks" in page.text("error-text")  # the server's readable reason
    assert not page.el("hit-nav").is_displayed()
    assert not Assignment.objects.filter(batch=hit_batch).exists()


def test_without_marketplace_parameters_or_login_the_page_offers_the_login(hit_page, hit_batch):
    page = hit_page.open(hit_batch)
    link = page.el("preview-banner").find_element("link text", "Log in to start")
    assert f"next=%2Fhit%2F{hit_batch.uuid}%2F" in link.get_attribute("href")
    assert Assignment.objects.count() == 0


def test_prolific_participant_is_sent_back_to_prolific_with_the_completion_code(hit_page, hit_batch):
    page = hit_page.open(hit_batch, PROLIFIC_PID="PID77", STUDY_ID="S1", SESSION_ID="SESS1")
    page.start()
    page.label_all()
    page.wait_saved()
    # no internet here: block Prolific's host so the redirect ends at once; the URL it went to is what counts
    page.driver.execute_cdp_cmd("Network.enable", {})
    page.driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["*prolific.com*"]})
    page.el("btn-submit").click()
    page.wait(
        lambda d: d.current_url.startswith("https://app.prolific.com/submissions/complete"),
        "the participant was not redirected to Prolific",
    )
    assignment = Assignment.objects.get(batch=hit_batch)
    assert assignment.backend == "prolific" and assignment.worker.external_id == "PID77"
    assert assignment.status in ("submitted", "approved", "rejected")
