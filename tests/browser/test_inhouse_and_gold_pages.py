"""In-house annotators (logged in): the HIT page's hand-off to the next batch, and the expert (gold) pages."""

import pytest
from django.conf import settings as django_settings
from selenium.webdriver.common.keys import Keys

from catalog.models import Clip
from catalog.services.clips import ClipSpec, clips_import
from catalog.services.users import user_create
from crowd.models import Assignment, ExpertAnnotation, InhouseTask
from tests.browser.conftest import GOLD_VIDEO, make_dataset

pytestmark = pytest.mark.browser


def log_in(browser, live_server, client, username):
    user = user_create(username, "annotator", password="pw-" + username)["user"]  # an in-house annotator
    client.force_login(user)
    browser.get(f"{live_server.url}/static/frontend/hit/hit.css")  # any page of the site, to set its cookie
    browser.add_cookie(
        {
            "name": django_settings.SESSION_COOKIE_NAME,
            "value": client.cookies[django_settings.SESSION_COOKIE_NAME].value,
            "path": "/",
        }
    )
    return user


def test_in_house_annotator_submits_and_is_offered_the_next_batch(
    hit_page, transactional_db, taxonomy, clip_factory, live_server, client
):
    _, batches = make_dataset(clip_factory, name="inhouse", n_regular=6, n_gold=2)
    assert len(batches) == 2
    user = log_in(hit_page.driver, live_server, client, "annotator1")
    for batch in batches:  # in-house annotators label only the batches assigned to them
        InhouseTask.objects.create(batch=batch, user=user)
    page = hit_page.open(batches[0])
    page.start()
    page.label_all()
    page.wait_saved()
    page.el("btn-submit").click()
    link = page.wait(lambda d: d.find_elements("id", "next-batch"), "no next-batch link after submit")[0]
    assert link.text == "Next batch →"
    assert link.get_attribute("href").endswith(f"/hit/{batches[1].uuid}/")
    assignment = Assignment.objects.get(batch=batches[0])
    assert assignment.backend == "inhouse" and assignment.worker.user == user
    assert assignment.status in ("submitted", "approved")
    link.click()
    page.wait(lambda d: page.state() in ("clip", "instructions"))
    assert page.progress() == "Clip 1 of 4"


def test_expert_labels_a_gold_clip_with_the_full_class_list(
    browser, live_server, client, transactional_db, taxonomy, clip_factory
):
    dataset, _ = make_dataset(clip_factory, name="goldpages")
    clips_import(dataset, [ClipSpec("meow_1", str(clip_factory("meow", seed=5)), ["cat meowing"], "test")])
    log_in(browser, live_server, client, "expert1")
    browser.implicitly_wait(10)  # the steps below follow page loads (link, form post): wait for the new page

    browser.get(f"{live_server.url}/gold/?dataset=goldpages")
    summary = browser.find_element("id", "coverage-summary").text
    assert "1 of 309 classes" in summary  # the gold clip's dog barking
    assert "meow_1" in browser.find_element("css selector", ".suggested").text  # would add cat meowing
    queue = browser.find_element("id", "gold-queue").text
    assert GOLD_VIDEO in queue and "meow_1" in queue
    browser.find_element("link text", GOLD_VIDEO).click()

    shown_rows = (
        "return [...document.querySelectorAll('#class-rows li')].filter(li => li.offsetParent)"
        ".map(li => li.dataset.name)"
    )
    assert len(browser.execute_script(shown_rows)) == 309
    search = browser.find_element("id", "class-filter")
    search.send_keys("meow")
    shown = browser.execute_script(shown_rows)
    assert "cat meowing" in shown and all("meow" in name for name in shown)
    search.send_keys(Keys.ENTER)  # jumps to the first match instead of submitting
    assert browser.current_url.endswith(f"/gold/clip/{Clip.objects.get(video_id=GOLD_VIDEO).pk}/")
    browser.find_element("css selector", 'input[aria-label="cat meowing visible"]').click()
    search.clear()
    search.send_keys("dog bark")
    browser.find_element("css selector", 'input[aria-label="dog barking audible"]').click()
    assert browser.find_element("id", "tick-count").text == "2 ticked"
    for key, value in (
        ("background_music", "no"),
        ("voice_over", "no"),
        ("static_image", "yes"),
        ("original_present", "yes"),
        ("original_audible", "yes"),
        ("original_visible", "no"),
    ):
        browser.find_element("css selector", f'input[name="{key}"][value="{value}"]').click()
    browser.find_element("css selector", 'button[value="stay"]').click()

    assert "Saved clip gold_0: 2 classes ticked" in browser.find_element("css selector", ".flash").text
    ann = ExpertAnnotation.objects.get(clip__video_id=GOLD_VIDEO)
    assert sorted((lab["name"], lab["audible"], lab["visible"]) for lab in ann.labels) == [
        ("cat meowing", False, True),
        ("dog barking", True, False),
    ]
    assert (ann.background_music, ann.voice_over, ann.static_image) == (False, False, True)
    assert (ann.original_present, ann.original_audible, ann.original_visible) == (True, True, False)
    # the page shows the saved annotation again
    assert browser.find_element("css selector", 'input[aria-label="cat meowing visible"]').is_selected()
    assert browser.find_element("css selector", 'input[name="static_image"][value="yes"]').is_selected()
    # and the clip left this expert's queue
    browser.get(f"{live_server.url}/gold/?dataset=goldpages")
    assert GOLD_VIDEO not in browser.find_element("id", "gold-queue").text
