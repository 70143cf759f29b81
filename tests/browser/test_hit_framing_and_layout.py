"""The HIT page inside an iframe (allowed and refused origins), its layout at MTurk/laptop sizes, its size."""

import http.server
import threading

import pytest

from tests.browser.conftest import make_dataset, set_viewport

pytestmark = pytest.mark.browser


class OuterPage:
    """A second local HTTP server (another origin) serving one page that frames the HIT page."""

    def __init__(self, inner_url):
        html = (
            f"<!doctype html><title>outer</title><h1>Worker site</h1>"
            f"<iframe id='hit' src='{inner_url}' width='1200' height='650'></iframe>"
        ).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write(html)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def outer_pages():
    made = []

    def make(inner_url):
        made.append(OuterPage(inner_url))
        return made[-1]

    yield make
    for page in made:
        page.close()


def test_hit_page_renders_in_an_iframe_from_an_allowed_origin_and_is_refused_by_another(
    browser, live_server, settings, hit_batch, outer_pages
):
    url = f"{live_server.url}/hit/{hit_batch.uuid}/?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=H"
    allowed, other = outer_pages(url), outer_pages(url)
    settings.FRAME_ANCESTORS_EXTRA = [allowed.origin]

    browser.get(allowed.origin)
    browser.switch_to.frame(browser.find_element("id", "hit"))
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 10).until(
        lambda d: d.execute_script(
            "var a = document.getElementById('hit-app'); return a && a.dataset.state == 'instructions'"
        ),
        "the framed HIT page did not load",
    )
    assert "Preview" in browser.find_element("id", "preview-banner").text
    browser.switch_to.default_content()

    browser.get_log("browser")  # drop earlier messages
    browser.get(other.origin)
    frame = browser.find_element("id", "hit")
    WebDriverWait(browser, 10).until(
        lambda d: any("frame-ancestors" in m["message"] for m in d.get_log("browser")),
        "Chromium did not report a frame-ancestors refusal",
    )
    browser.switch_to.frame(frame)
    assert browser.execute_script("return document.getElementById('hit-app')") is None
    browser.switch_to.default_content()


@pytest.fixture
def big_batch(transactional_db, taxonomy, clip_factory):
    """A batch whose clips carry 30 proposals each, as in production."""
    from crowd.models import BatchItem

    _, batches = make_dataset(clip_factory, name="layout", n_regular=3)
    batch = batches[0]
    proposals = taxonomy[40:70]
    BatchItem.objects.filter(batch=batch).update(proposals=proposals)
    return batch


@pytest.mark.parametrize("width,height", [(1280, 720), (1440, 900), (1280, 800)])
def test_layout_fits_mturk_frame_and_13_inch_laptops(hit_page, big_batch, width, height, tmp_path):
    set_viewport(hit_page.driver, width, height)
    page = hit_page.open(
        big_batch,
        assignmentId="LAYOUT1",
        hitId="H",
        workerId=f"W{width}{height}",
        turkSubmitTo="https://workersandbox.mturk.com",
    )
    page.start()
    page.wait_played()
    shot = tmp_path / f"hit-{width}x{height}.png"
    page.driver.save_screenshot(str(shot))
    if (width, height) == (1280, 720):
        page.driver.save_screenshot("/tmp/avcrowd-hit-1280x720.png")  # kept for people to look at
    geometry = page.driver.execute_script("""
        const r = (id) => document.getElementById(id).getBoundingClientRect();
        return {inner: [innerWidth, innerHeight], scroll: [document.documentElement.scrollWidth,
                document.documentElement.scrollHeight], video: r('video'), next: r('btn-next'),
                search: r('class-search'), lastMeta: document.querySelector('#meta-form fieldset:last-child')
                .getBoundingClientRect(), rows: r('label-rows'),
                nRows: document.querySelectorAll('#label-rows li').length};
    """)
    assert geometry["inner"] == [width, height]
    # only the clip view is on screen (no error overlay, no other view leaking through)
    shown = [
        v
        for v in ("view-instructions", "view-review", "view-done", "view-error", "video-error", "message")
        if page.el(v).is_displayed()
    ]
    assert shown == []
    # no page scrolling: everything the worker needs is on screen; only the class list scrolls
    assert geometry["scroll"][0] <= width and geometry["scroll"][1] <= height
    for part in ("video", "next", "search", "lastMeta"):
        box = geometry[part]
        assert box["top"] >= 0 and box["bottom"] <= height and box["right"] <= width, part
    assert geometry["video"]["height"] >= 180
    assert geometry["nRows"] == 30 and geometry["rows"]["bottom"] <= geometry["next"]["top"]
