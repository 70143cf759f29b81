"""A Content-Security-Policy with script-src 'self' on every page, and no page that needs more: no inline <script>
and no on*= handler in any template or rendered page (a script that slipped into a page by injection would not
run)."""

import re
from pathlib import Path

import pytest
from django.urls import get_resolver

from tests.foundation.test_access_matrix import client_for, fill, walk, world  # noqa: F401 - the fixture

ROOT = Path(__file__).resolve().parents[2]
INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc=)(?![^>]*type=\"application/(?:ld\+)?json\")[^>]*>", re.I)
HANDLER = re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.I)


def _problems(html: str) -> list[str]:
    found = [m.group(0)[:80] for m in INLINE_SCRIPT.finditer(html)]
    return found + [m.group(0)[-60:] for m in HANDLER.finditer(html)]


def test_no_template_has_an_inline_script_or_handler():
    templates = [
        p for p in ROOT.rglob("templates/**/*.html") if ".venv" not in p.parts and "node_modules" not in p.parts
    ]
    assert len(templates) > 20
    bad = {str(p.relative_to(ROOT)): _problems(p.read_text()) for p in templates}
    assert not {k: v for k, v in bad.items() if v}


def test_the_checks_find_what_they_look_for():
    assert _problems('<script>alert(1)</script><script src="/x.js"></script><a href="#" onclick="x()">')
    assert not _problems(
        '<script type="module" src="/static/a.js"></script><script type="application/json">{}</script>'
    )


def test_every_page_has_the_policy_and_no_inline_script(world):  # noqa: F811
    problems, pages = [], 0
    admin = client_for("admin", world)
    endpoints = list(walk(get_resolver().url_patterns))
    admin_pages = [e for e in endpoints if e.in_django_admin and e.name.endswith(("_changelist", "_add", "index"))]
    for endpoint in [e for e in endpoints if not e.in_django_admin] + admin_pages[:40]:
        url = fill(endpoint, world)
        response = admin.get(url)
        csp = response.get("Content-Security-Policy", "")
        if "script-src 'self';" not in csp or "object-src 'none'" not in csp:
            problems.append(f"{url}: Content-Security-Policy {csp!r}")
        if "text/html" in response.get("Content-Type", "") and response.status_code == 200:
            pages += 1
            body = b"".join(response.streaming_content) if response.streaming else response.content
            problems += [f"{url}: {p}" for p in _problems(body.decode(errors="replace"))]
    assert pages > 30
    assert not problems, "\n".join(problems)


@pytest.mark.django_db
def test_the_hit_page_keeps_its_frame_ancestors_and_mturk_as_a_form_target(client):
    from django.conf import settings

    response = client.get("/hit/00000000-0000-4000-8000-000000000000/")
    csp = response["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "frame-ancestors 'self' https://worker.mturk.com" in csp
    assert all(origin in csp.split("form-action")[1].split(";")[0] for origin in settings.MTURK_SUBMIT_ORIGINS)
