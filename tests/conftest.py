"""Fixtures shared by the whole suite: the taxonomy, media clips, a headless Chromium, a real Celery worker."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _django_settings():
    """Django's settings when Django is installed and configured, else None: the plain packages' tests
    (models_zoo, benchmark) also run with `-p no:django` or on a host without Django (the GPU machine)."""
    try:
        from django.conf import settings
    except ImportError:
        return None
    return settings if settings.configured else None


ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
    "--mute-audio",
    "--window-size=1280,720",
]


def pytest_report_header(config):
    settings = _django_settings()
    if settings is None:
        return "avcrowd test services: Django not configured (plain-package tests only)"
    db = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    broker = os.environ.get("CELERY_BROKER_URL") or "none (tasks in-process)"
    return f"avcrowd test services: database={db}, celery broker={broker}"


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """After migrating the test database, load the 309-class taxonomy once for the session."""
    from catalog.services.taxonomy import taxonomy_load

    with django_db_blocker.unblock():
        taxonomy_load()


@pytest.fixture(autouse=True)
def _fresh_batch_contents_cache():
    """The annotator services cache batch contents per batch id (never reused in production); a test's rollback
    makes the database hand the same ids out again, so every test starts with an empty cache."""
    if _django_settings() is None:
        yield
        return
    from django.core.cache import cache

    from catalog.selectors import taxonomy
    from crowd.selectors.crowd import clear_cache

    clear_cache()
    taxonomy.clear_cache()
    cache.clear()  # rate-limit counters (catalog.throttles, sign-in failures) start at zero in every test
    yield
    clear_cache()


@pytest.fixture
def taxonomy(db):
    """The taxonomy, (re)loaded if a transactional test flushed it. Returns the class names in logit order."""
    from catalog.models import TaxonomyClass
    from catalog.selectors.taxonomy import class_names, clear_cache
    from catalog.services.taxonomy import taxonomy_load

    if TaxonomyClass.objects.count() != 309:
        taxonomy_load()
    clear_cache()
    return class_names()


@pytest.fixture
def make_crowd_dataset(taxonomy):
    """make(name, n_regular, n_gold, **dataset fields) -> a Dataset whose clips have remote media (no files):
    regular clip r<i> has original label taxonomy[i]; gold clip g<i> has gold labels taxonomy[100+i] (AV, the
    original label) and taxonomy[200+i] (A)."""
    from catalog.models import Clip, Dataset, GoldLabel, TaxonomyClass

    def make(name: str, n_regular: int, n_gold: int, **fields):
        ds = Dataset.objects.create(name=name, **fields)
        classes = {c.name: c for c in TaxonomyClass.objects.all()}
        for i in range(n_regular):
            clip = Clip.objects.create(
                dataset=ds, video_id=f"r{i:03d}", media_url=f"https://cdn.example.org/clips/r{i:03d}.mp4"
            )
            clip.original_labels.set([classes[taxonomy[i % len(taxonomy)]]])
        for i in range(n_gold):
            clip = Clip.objects.create(
                dataset=ds, video_id=f"g{i:03d}", is_gold=True, media_url=f"https://cdn.example.org/clips/g{i:03d}.mp4"
            )
            GoldLabel.objects.create(clip=clip, cls=classes[taxonomy[100 + i]], modality="AV", original=True)
            GoldLabel.objects.create(clip=clip, cls=classes[taxonomy[200 + i]], modality="A")
        return ds

    return make


@pytest.fixture(scope="session")
def clip_factory(tmp_path_factory):
    """make(name, **kwargs) -> Path of a small synthetic mp4 (cached per name and arguments)."""
    from catalog.core.media import make_synthetic_clip

    base = tmp_path_factory.mktemp("clips")
    cache: dict = {}

    def make(name: str = "clip", **kwargs) -> Path:
        kwargs.setdefault("seconds", 1.0)
        key = (name, tuple(sorted(kwargs.items())))
        if key not in cache:
            # one folder per set of arguments, so that the same name made with other arguments (a 0.5 s "b0" for
            # one test, a 1 s "b0" for another) never overwrites a file another test was handed; the file keeps
            # its name, which imports take as the video id
            folder = base / hashlib.sha1(repr(key[1]).encode()).hexdigest()[:12]
            cache[key] = make_synthetic_clip(folder / f"{name}.mp4", **kwargs)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def chromium_driver_path():
    path = shutil.which("chromedriver")
    if not path or not shutil.which("chromium"):
        if os.environ.get("CI"):
            pytest.fail(
                "chromium/chromedriver missing in CI: .ci/run must install Debian packages chromium chromium-driver"
            )
        pytest.skip("chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")
    return path


@pytest.fixture
def browser(chromium_driver_path, tmp_path):
    """A real headless Chromium driven by Selenium, 1280x720."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(chromium_driver_path), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def celery_worker_process(transactional_db, tmp_path):
    """Start a real `celery worker` process against the test database and the Redis broker.

    Yields the queue name it consumes. Tasks sent with `.apply_async(queue=...)` or routed there run in that
    process; the test's data must be committed (transactional_db) for the worker to see it.
    """
    from django.conf import settings

    from config.celery import app

    broker = os.environ.get("CELERY_BROKER_URL")
    db = settings.DATABASES["default"]
    if not broker or "postgresql" not in db["ENGINE"]:
        pytest.skip("needs CELERY_BROKER_URL (Redis) and DATABASE_URL (PostgreSQL): `make test` in CI sets both")
    queue = f"test-{os.getpid()}-{int(time.time() * 1000)}"
    env = dict(os.environ)
    env["DATABASE_URL"] = (
        f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    )
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    env["AVCROWD_DEV"] = "1"
    env["MEDIA_ROOT"] = str(settings.MEDIA_ROOT)
    log = tmp_path / "worker.log"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool=solo",
            "--concurrency=1",
            "-Q",
            queue,
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
            "-n",
            f"{queue}@%h",
            "--loglevel=INFO",
        ],
        cwd=ROOT,
        env=env,
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
    )
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = False
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            if "ready." in log.read_text():
                break
            if proc.poll() is not None:
                pytest.fail(f"celery worker exited early:\n{log.read_text()}")
            time.sleep(0.3)
        else:
            pytest.fail(f"celery worker did not start in 60 s:\n{log.read_text()}")
        yield queue
    finally:
        app.conf.task_always_eager = previous
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
