"""Fixtures for the HIT page and expert page browser tests: a small dataset with batches, a page driver."""

from __future__ import annotations

import random
import time

import pytest

GOLD_VIDEO = "gold_0"


def make_dataset(clip_factory, *, name="hitdemo", n_regular=3, batch_size=4, seconds=1.0, n_gold=1):
    """A dataset with `n_regular` regular clips and `n_gold` gold clips (gold_<i>: dog barking, AV), batches of
    `batch_size` clips with one gold clip each."""
    from catalog.models import Clip, Dataset, GoldLabel, TaxonomyClass
    from catalog.services.clips import ClipSpec, clips_import
    from crowd.services.batches import batches_create

    dataset = Dataset.objects.create(name=name, batch_size=batch_size, gold_per_batch=1, annotations_per_clip=3)
    specs = [
        ClipSpec(f"clip_{i}", str(clip_factory(f"b{i}", seed=i, seconds=seconds)), ["dog barking"], "test")
        for i in range(n_regular)
    ]
    gold_ids = {f"gold_{i}" for i in range(n_gold)}
    specs += [
        ClipSpec(vid, str(clip_factory(vid, seed=99 - i, seconds=seconds)), ["dog barking"], "test")
        for i, vid in enumerate(sorted(gold_ids))
    ]
    clips_import(dataset, specs, gold_ids=gold_ids)
    barking = TaxonomyClass.objects.get(name="dog barking")
    for gold in Clip.objects.filter(dataset=dataset, video_id__in=gold_ids):
        GoldLabel.objects.create(clip=gold, cls=barking, modality="AV", original=True)
    proposals = {s.video_id: ["dog barking", "cat meowing", "people whistling"] for s in specs}
    batches = batches_create(dataset, proposals=proposals, rng=random.Random(7))
    return dataset, batches


@pytest.fixture
def hit_batch(transactional_db, taxonomy, clip_factory):
    """One batch of 4 clips (3 regular + 1 gold), 1-second clips, proposals dog barking / cat meowing / whistling."""
    dataset, batches = make_dataset(clip_factory)
    assert len(batches) == 1
    return batches[0]


class HitPage:
    """Drives the HIT page in the `browser` fixture."""

    def __init__(self, driver, base_url):
        self.driver = driver
        self.base_url = base_url.rstrip("/")

    # --- navigation
    def open(self, batch, **params):
        from urllib.parse import urlencode

        self.driver.get(f"{self.base_url}/hit/{batch.uuid}/?{urlencode(params)}")
        self.wait(
            lambda d: d.find_element("id", "hit-app").get_attribute("data-state") != "loading",
            "the HIT page did not finish loading",
        )
        return self

    def wait(self, condition, message="condition not met", timeout=10):
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, timeout, poll_frequency=0.05).until(condition, message)

    def state(self):
        return self.driver.find_element("id", "hit-app").get_attribute("data-state")

    def el(self, id_):
        return self.driver.find_element("id", id_)

    def box(self, name):
        """The checkbox whose accessible name is `name` (e.g. "dog barking audible")."""
        return self.driver.find_element("css selector", f'input[aria-label="{name}"]')

    def text(self, id_):
        return self.el(id_).text

    def progress(self):
        return self.text("progress")

    def save_status(self):
        return self.text("save-status")

    def key(self, key, target=None):
        from selenium.webdriver.common.action_chains import ActionChains

        if target is None:
            ActionChains(self.driver).send_keys(key).perform()
        else:
            target.send_keys(key)

    def start(self):
        if self.state() == "instructions":
            self.el("btn-start").click()
        self.wait(lambda d: self.state() == "clip", "the clip view did not open")

    def wait_played(self, timeout=15):
        playing = (
            "var v = document.getElementById('video'); return !v.paused || v.ended"
            " || document.getElementById('play-state').dataset.played == 'true'"
        )
        try:
            self.wait(lambda d: d.execute_script(playing), timeout=2)
        except Exception:  # autoplay refused: press Play like a worker would
            self.el("btn-play").click()
        self.wait(
            lambda d: self.el("play-state").get_attribute("data-played") == "true",
            "the clip never counted as played",
            timeout=timeout,
        )

    def answer_meta(self, values=(False, False, False)):
        for fs, value in zip(self.driver.find_elements("css selector", "#meta-form fieldset"), values):
            fs.find_element("css selector", f'input[value="{"yes" if value else "no"}"]').click()

    def wait_saved(self, timeout=10):
        self.wait(lambda d: self.save_status() == "All changes saved", "changes were not saved", timeout=timeout)

    def label_all(self, meta=(False, False, False), tick="dog barking audible"):
        """Answer every remaining clip the quick way (mouse), then open the review screen."""
        while self.state() == "clip":
            self.wait_played()
            self.answer_meta(meta)
            if tick and not self.box(tick).is_selected():
                self.box(tick).click()
            self.el("btn-next").click()
        self.wait(lambda d: self.state() == "review", "the review screen did not open")

    def console(self):
        return self.driver.get_log("browser")


@pytest.fixture
def hit_page(browser, live_server, settings):
    settings.ROOT_URLCONF = "tests.browser.urls"  # adds a stand-in for MTurk's externalSubmit
    from tests.browser import urls

    urls.RECEIVED.clear()
    return HitPage(browser, live_server.url)


def set_viewport(driver, width, height):
    """Make the page's viewport exactly width x height CSS pixels (the window size includes browser chrome)."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )


def wait_for(predicate, timeout=10.0, message="condition not met"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(message)
