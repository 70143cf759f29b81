"""The HIT page's rough edges, in real headless Chromium: layout from a large laptop down to a phone (screenshots
checked by element sizes and visibility), the "Before moving on" banner, keys for Audible/Visible, the comment box,
the hint for a clip without proposals; and the gold page ticking the original class from the expert's answers."""

import pytest
from selenium.webdriver.common.keys import Keys

from catalog.models import Clip
from crowd.models import Assignment, BatchItem, ClipAnswer, ExpertAnnotation
from tests.browser.conftest import GOLD_VIDEO, make_dataset, set_viewport
from tests.browser.test_inhouse_and_gold_pages import log_in

pytestmark = pytest.mark.browser

MTURK = {"hitId": "HIT1", "turkSubmitTo": "https://workersandbox.mturk.com"}

GEOMETRY = """
const r = (e) => { const b = e.getBoundingClientRect(); return {top: b.top, bottom: b.bottom, left: b.left,
    right: b.right, width: b.width, height: b.height}; };
const v = document.getElementById('video');
const b = v.getBoundingClientRect();
// what is drawn where the video's controls are (its bottom strip) and in its middle: the video itself, or a cover
const at = (x, y) => { const e = document.elementFromPoint(x, y); return e ? e.id || e.tagName : null; };
return {inner: [innerWidth, innerHeight], scrollWidth: document.documentElement.scrollWidth,
    video: r(v), controlsAt: at(b.left + b.width / 2, b.bottom - 12), middleAt: at(b.left + b.width / 2,
    b.top + b.height / 2), next: r(document.getElementById('btn-next')),
    search: r(document.getElementById('class-search'))};
"""


@pytest.fixture
def big_batch(transactional_db, taxonomy, clip_factory):
    """A batch whose clips carry 30 proposals each, as in production."""
    _, batches = make_dataset(clip_factory, name="polish", n_regular=3)
    BatchItem.objects.filter(batch=batches[0]).update(proposals=taxonomy[40:70])
    return batches[0]


@pytest.mark.parametrize("width,height", [(1400, 1000), (1024, 640), (390, 844)])
def test_the_video_and_its_controls_stay_usable_from_a_laptop_down_to_a_phone(hit_page, big_batch, width, height):
    set_viewport(hit_page.driver, width, height)
    page = hit_page.open(big_batch, assignmentId=f"L{width}", workerId=f"W{width}", **MTURK)
    page.start()
    page.wait_played()
    page.driver.save_screenshot(f"/tmp/avcrowd-hit-{width}x{height}.png")  # kept for people to look at
    g = page.driver.execute_script(GEOMETRY)
    assert g["inner"] == [width, height]
    assert g["scrollWidth"] <= width, "the page scrolls sideways"
    video = g["video"]
    # the whole video is on screen without scrolling, at least 200 px tall, and nothing covers its controls
    assert video["height"] >= 200, video
    assert video["top"] >= 0 and video["bottom"] <= height and video["left"] >= 0 and video["right"] <= width, video
    assert g["controlsAt"] == "video" and g["middleAt"] == "video", g
    # Next is on screen at every size; the search box too on screens wide enough for two columns
    nxt = g["next"]
    assert nxt["height"] > 0 and nxt["top"] >= 0 and nxt["bottom"] <= height and nxt["right"] <= width, nxt
    if width > 900:
        assert 0 <= g["search"]["top"] and g["search"]["bottom"] <= height
    else:  # one column: the search box is below the video, reached by scrolling the clip view
        assert g["search"]["top"] > video["bottom"]
        page.driver.execute_script("document.getElementById('class-search').scrollIntoView()")
        assert page.el("class-search").is_displayed()
    # every yes/no question can be answered at this size (scrolled into view by the browser if needed)
    page.answer_meta((False, False, False))
    page.el("btn-next").click()
    page.wait(lambda d: page.progress() == "Clip 2 of 4", "the worker could not move on at this size")


def test_the_before_moving_on_banner_follows_the_answers_and_clears(hit_page, hit_batch):
    page = hit_page.open(hit_batch, assignmentId="BANNER", workerId="WB", **MTURK)
    page.start()
    page.wait_played()
    page.el("btn-next").click()
    message = page.el("message")
    assert message.is_displayed() and "background music" in message.text and "static image" in message.text
    fieldsets = page.driver.find_elements("css selector", "#meta-form fieldset")
    fieldsets[0].find_element("css selector", 'input[value="no"]').click()
    fieldsets[1].find_element("css selector", 'input[value="yes"]').click()
    assert message.is_displayed() and "background music" not in message.text and "static image" in message.text
    fieldsets[2].find_element("css selector", 'input[value="no"]').click()
    page.wait(lambda d: not message.is_displayed(), "the banner stayed after every question was answered")
    assert page.progress() == "Clip 1 of 4"  # clearing the banner does not move on by itself
    page.el("btn-next").click()
    page.wait(lambda d: page.progress() == "Clip 2 of 4")


def test_keys_tick_audible_and_visible_on_the_highlighted_row_and_are_saved(hit_page, hit_batch):
    page = hit_page.open(hit_batch, assignmentId="KEYS", workerId="WK", **MTURK)
    page.start()
    page.wait_played()
    rows = page.driver.find_elements("css selector", "#label-rows li")
    assert [r.get_attribute("data-name") for r in rows] == ["dog barking", "cat meowing", "people whistling"]
    assert "current" in rows[0].get_attribute("class")  # the first class is highlighted from the start
    page.key("a")
    assert page.box("dog barking audible").is_selected() and not page.box("dog barking visible").is_selected()
    page.key(Keys.ARROW_DOWN)
    rows = page.driver.find_elements("css selector", "#label-rows li")
    assert "current" in rows[1].get_attribute("class") and "current" not in rows[0].get_attribute("class")
    page.key("v")
    page.key("V")  # twice: ticked and unticked again
    page.key(Keys.ARROW_DOWN)
    page.key("v")
    page.key(Keys.ARROW_UP)
    page.key(Keys.ARROW_UP)
    page.key(Keys.ARROW_UP)  # stops at the first row
    page.key("v")
    assert page.box("dog barking visible").is_selected() and not page.box("cat meowing visible").is_selected()
    # typing in the search box types; it does not tick
    page.el("class-search").send_keys("av")
    assert page.el("class-search").get_attribute("value") == "av"
    assert not page.box("cat meowing audible").is_selected()
    page.wait_saved()
    answer = ClipAnswer.objects.get(assignment__external_assignment_id="KEYS", clip__video_id=page_video(page))
    ticks = {(lab["name"], lab["audible"], lab["visible"]) for lab in answer.labels if lab["audible"] or lab["visible"]}
    assert ticks == {("dog barking", True, True), ("people whistling", False, True)}


def page_video(page):
    return page.el("video").get_attribute("data-video-id")


def test_an_optional_comment_is_saved_with_the_clip_and_shown_again_after_a_reload(hit_page, hit_batch):
    page = hit_page.open(hit_batch, assignmentId="COMMENT", workerId="WC", **MTURK)
    page.start()
    page.wait_played()
    box = page.el("comment-box")
    assert box.is_displayed() and box.get_attribute("open") is None  # closed: it is optional
    box.find_element("css selector", "summary").click()
    page.el("comment").send_keys("The sound starts only after 5 s. A and V are mixed up.")
    page.answer_meta((False, False, False))
    assert not page.box("dog barking audible").is_selected()  # "A" and "V" typed in the box tick nothing
    video = page_video(page)
    page.el("btn-next").click()  # leaving the clip sends the comment at once
    page.wait(lambda d: page.progress() == "Clip 2 of 4")
    page.wait_saved()
    answer = ClipAnswer.objects.get(assignment__external_assignment_id="COMMENT", clip__video_id=video)
    assert answer.comment == "The sound starts only after 5 s. A and V are mixed up."
    page.open(hit_batch, assignmentId="COMMENT", workerId="WC", **MTURK)
    page.wait(lambda d: page.state() == "clip")
    page.key(Keys.ARROW_LEFT)
    page.wait(lambda d: page.progress() == "Clip 1 of 4")
    assert page.el("comment-box").get_attribute("open") is not None
    assert page.el("comment").get_attribute("value").startswith("The sound starts only after 5 s.")
    # a comment over the limit cannot be typed (the server refuses more than 2000 characters)
    assert page.el("comment").get_attribute("maxlength") == "2000"


def test_a_clip_without_proposals_says_to_search(hit_page, hit_batch):
    first = hit_batch.items.order_by("position").first()
    BatchItem.objects.filter(pk=first.pk).update(proposals=[])
    page = hit_page.open(hit_batch, assignmentId="EMPTY", workerId="WE", **MTURK)
    page.start()
    hint = page.el("no-proposals")
    assert hint.is_displayed() and "search" in hint.text
    assert page.driver.find_elements("css selector", "#label-rows li") == []
    page.key("/")
    page.el("class-search").send_keys("dog bark", Keys.ENTER)
    page.wait(lambda d: page.box("dog barking audible"))
    assert page.el("no-proposals").is_displayed() is False
    page.wait_played()
    page.answer_meta((False, False, False))
    page.el("btn-next").click()
    page.wait(lambda d: page.progress() == "Clip 2 of 4")
    assert not page.el("no-proposals").is_displayed()  # the next clip has proposals


def test_the_gold_page_ticks_the_original_class_from_the_experts_answers(
    browser, live_server, client, transactional_db, taxonomy, clip_factory
):
    make_dataset(clip_factory, name="goldticks")
    log_in(browser, live_server, client, "expert2")
    browser.implicitly_wait(10)
    clip = Clip.objects.get(video_id=GOLD_VIDEO)  # original label: dog barking
    browser.get(f"{live_server.url}/gold/clip/{clip.pk}/")
    count = browser.find_element("id", "tick-count")
    audible = browser.find_element("css selector", 'input[aria-label="dog barking audible"]')
    visible = browser.find_element("css selector", 'input[aria-label="dog barking visible"]')
    assert count.text == "0 ticked"

    def answer(key, value):
        browser.find_element("css selector", f'input[name="{key}"][value="{value}"]').click()

    answer("original_present", "yes")
    answer("original_audible", "yes")
    assert audible.is_selected() and not visible.is_selected() and count.text == "1 ticked"
    answer("original_visible", "yes")
    assert visible.is_selected() and count.text == "1 ticked"
    answer("original_present", "no")
    assert not audible.is_selected() and not visible.is_selected() and count.text == "0 ticked"
    answer("original_present", "yes")
    answer("original_visible", "no")
    assert audible.is_selected() and not visible.is_selected()
    # ticking the row by hand answers the questions the same way
    visible.click()
    assert browser.find_element("css selector", 'input[name="original_visible"][value="yes"]').is_selected()
    for key in ("background_music", "voice_over", "static_image"):
        answer(key, "no")
    browser.find_element("css selector", 'button[value="stay"]').click()
    assert "1 class ticked" in browser.find_element("css selector", ".flash").text
    ann = ExpertAnnotation.objects.get(clip=clip)
    assert (ann.original_present, ann.original_audible, ann.original_visible) == (True, True, True)
    assert [(lab["name"], lab["audible"], lab["visible"]) for lab in ann.labels] == [("dog barking", True, True)]
    assert browser.find_element("id", "tick-count").text == "1 ticked"
    assert not Assignment.objects.exists()
