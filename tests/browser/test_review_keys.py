"""The review screen in Chromium: keys to go through the clips and to decide (R, the reason, Enter), then the next
waiting assignment opens."""

import random

import pytest
from django.conf import settings as django_settings
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys

from catalog.services.users import user_create
from crowd.models import Assignment
from crowd.services.assignments import assignment_start, assignment_submit
from crowd.services.batches import batches_create
from tests.crowd_helpers import fill_assignment

pytestmark = pytest.mark.browser


def test_an_admin_reviews_by_keyboard(browser, live_server, client, make_crowd_dataset, taxonomy, transactional_db):
    ds = make_crowd_dataset("revkeys", 6, 2, batch_size=4, gold_per_batch=1, review_window_hours=72, reject_below=0)
    batch = batches_create(ds, rng=random.Random(5))[0]
    made = []
    for worker in ("W1", "W2"):
        a = assignment_start(batch, backend="simulated", worker_external_id=worker)
        fill_assignment(a, taxonomy, good=worker == "W1")
        made.append(assignment_submit(a, work_seconds=100))
    client.force_login(user_create("boss", "admin")["user"])
    browser.get(f"{live_server.url}/static/frontend/site.css")
    browser.add_cookie(
        {
            "name": django_settings.SESSION_COOKIE_NAME,
            "value": client.cookies[django_settings.SESSION_COOKIE_NAME].value,
        }
    )
    browser.set_window_size(1400, 1000)
    browser.get(f"{live_server.url}/ops/revkeys/review/{made[1].uuid}/")
    assert browser.find_element("id", "catch-f1").text == "0 %"

    def keys(*k):
        ActionChains(browser).send_keys(*k).perform()

    keys("j", "j")
    current = browser.find_elements("css selector", ".review-clip.current")
    assert len(current) == 1 and current[0].get_attribute("id") == "clip-2"
    assert browser.switch_to.active_element.get_attribute("id") == "clip-2"
    keys("k")
    assert browser.find_element("css selector", ".review-clip.current").get_attribute("id") == "clip-1"
    keys("r")
    assert browser.find_element("id", "decide-reject").is_selected()
    assert browser.switch_to.active_element.get_attribute("id") == "reason"
    keys("nothing ticked on the catch trial")  # typed into the reason: "r", "n", "j" are not shortcuts there
    assert browser.find_element("id", "decide-reject").is_selected()
    keys(Keys.ENTER)  # submits with the first button: decide and open the next
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 10).until(lambda d: str(made[0].uuid) in d.current_url, "the next assignment did not open")
    assert "rejected" in browser.find_element("css selector", ".flash").text
    made[1].refresh_from_db()
    assert made[1].status == Assignment.REJECTED and made[1].decision_reason == "nothing ticked on the catch trial"
    assert browser.find_element("id", "catch-f1").text == "100 %"
