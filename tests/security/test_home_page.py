"""The public start page of a production server (DEBUG=0) shows strangers no dataset counts and no batch links;
admins and researchers see the overview; demo links give every visitor a worker id of their own."""

import re
from urllib.parse import parse_qs, urlparse

import pytest
from django.core.management import call_command
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo(taxonomy, capsys):
    call_command("seed_demo")
    capsys.readouterr()


def _links(html):
    return re.findall(r'href="(/hit/[^"]+|http[^"]*/hit/[^"]+)"', html)


def test_anonymous_visitors_of_a_production_server_see_no_counts_or_batch_links(demo, settings):
    settings.DEBUG = False
    page = Client().get("/").content.decode()
    assert "Gold clips" not in page and "demo" not in page and not _links(page) and "DEMO_WORKER" not in page
    assert "Log in" in page


@pytest.mark.parametrize("role", ["annotator", "researcher", "admin"])
def test_the_overview_is_for_admins_and_researchers(demo, settings, role_user, role):
    settings.DEBUG = False
    settings.HIT_SUBMIT_TO_SELF = False
    browser = Client()
    browser.force_login(role_user(f"u-{role}", role))
    page = browser.get("/").content.decode()
    assert ("Gold clips" in page) is (role != "annotator")
    if role != "annotator":  # no demo hand-off on a production server: plain links to the HIT page
        assert _links(page) and all(link.startswith("/hit/") for link in _links(page))


def test_demo_links_are_not_shared_between_visitors(demo, settings):
    settings.DEBUG = True
    workers = set()
    for _ in range(2):
        links = _links(Client().get("/").content.decode().replace("&amp;", "&"))
        assert links
        workers |= {parse_qs(urlparse(link).query)["workerId"][0] for link in links}
    assert len(workers) >= 2 and "DEMO_WORKER" not in workers
