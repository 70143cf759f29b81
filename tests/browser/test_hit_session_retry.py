"""The HIT page retries its session request like autosaves (a database restart, a deploy): the worker sees it
load instead of "HTTP 500"; an answer that will not change (404) is shown at once."""

import pytest

from tests.browser import urls_flaky

pytestmark = pytest.mark.browser


@pytest.fixture
def flaky_page(hit_page, settings):
    settings.ROOT_URLCONF = "tests.browser.urls_flaky"
    urls_flaky.FLAKY.update(failures_left=0, status=503, calls=0)
    return hit_page


def test_the_session_request_is_retried_with_backoff_until_the_server_answers(flaky_page, hit_batch):
    urls_flaky.FLAKY.update(failures_left=2, status=500)
    page = flaky_page
    page.driver.get(f"{page.base_url}/hit/{hit_batch.uuid}/?workerId=W1&assignmentId=A1&hitId=H1")
    page.wait(lambda d: page.state() not in ("loading",), "the HIT page never loaded", timeout=20)
    assert page.state() in ("instructions", "clip"), page.text("error-text") if page.state() == "error" else ""
    assert urls_flaky.FLAKY["calls"] == 3
    said = page.driver.execute_script("return document.getElementById('loading-text').textContent")
    assert said.startswith("The server did not answer (the database is restarting); trying again in")


def test_a_missing_task_is_reported_at_once_without_retrying(flaky_page, hit_batch):
    urls_flaky.FLAKY.update(failures_left=5, status=404)
    page = flaky_page
    page.driver.get(f"{page.base_url}/hit/{hit_batch.uuid}/?workerId=W1&assignmentId=A1&hitId=H1")
    page.wait(lambda d: page.state() == "error", "the error was not shown")
    assert page.text("error-text") == "This task does not exist (any more)."
    assert urls_flaky.FLAKY["calls"] == 1
