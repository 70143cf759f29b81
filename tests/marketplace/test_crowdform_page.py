"""The HTMLQuestion crowd-form page in headless Chromium: what a worker ticks is what the parser reads back."""

import json

import pytest

from crowd.marketplace.crowdform import CROWD_ELEMENTS_JS, crowd_form_page, parse_task_answers

pytestmark = pytest.mark.browser


def test_ticks_in_the_page_come_back_through_the_parser(browser, tmp_path, taxonomy):
    ids = ["clip_one", "clip_two"]
    # signed URLs of this server: they change, so the answers are keyed by clip id, never by URL
    urls = [
        "https://avcrowd.example.org/media/clip/7.1900000000:x:sig/",
        "https://avcrowd.example.org/media/clip/8:y:z/",
    ]
    proposals = [[taxonomy[0], taxonomy[1]], [taxonomy[2]]]
    html = crowd_form_page(ids, urls, proposals, taxonomy).replace(f'<script src="{CROWD_ELEMENTS_JS}"></script>', "")
    page = tmp_path / "page.html"
    page.write_text(html)
    browser.get(page.as_uri())
    box = lambda name: browser.find_element("css selector", f'input[aria-label="{name}"]')  # noqa: E731
    box(f"{taxonomy[0]} audible").click()
    box(f"{taxonomy[1]} visible").click()
    browser.find_elements("css selector", ".clip .meta input")[0].click()  # clip 1: background music
    # clip 2: add a class through the search box, tick it; an unknown text is kept as the classSearch comment
    search = browser.find_elements("css selector", ".clip .row input")[1]
    search.send_keys(taxonomy[50])
    browser.find_elements("css selector", ".clip .row button")[1].click()
    box(f"{taxonomy[50]} visible").click()
    search.send_keys("a squeaky swing")
    browser.find_elements("css selector", ".clip .row button")[1].click()
    # what crowd-form submits: every named input of the form
    fields = browser.execute_script(
        "const o={}; document.querySelectorAll('crowd-form input[name]').forEach(i=>o[i.name]=i.value); return o;"
    )
    assert {"clip_one", "clip_two", "classSearch-0", "classSearch-1"} == set(fields)
    parsed = parse_task_answers(json.dumps([fields]), ids, set(taxonomy))
    one, two = parsed.payloads["clip_one"], parsed.payloads["clip_two"]
    assert one["background_music"] is True and one["voice_over"] is False
    assert one["labels"] == [
        {"name": taxonomy[0], "audible": True, "visible": False},
        {"name": taxonomy[1], "audible": False, "visible": True},
    ]
    assert two["labels"] == [{"name": taxonomy[50], "audible": False, "visible": True}]
    assert two["comment"] == "a squeaky swing"
