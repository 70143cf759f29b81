"""Accounts: sign-in is throttled (the 6th wrong password within the window is refused even with the right
password, with a message that says so), Django's standard password validators are on, seed_demo refuses a
production server unless forced (and then prints random passwords), session and CSRF cookies are SameSite=Lax, and
the Docker build context leaves secrets, local data and history out."""

import fnmatch
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "Correct-horse-42"


@pytest.fixture
def account(db):
    return get_user_model().objects.create_user("annotator1", password=PASSWORD)


@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/"])
def test_the_sixth_wrong_password_locks_the_account_even_for_the_right_password(account, path):
    get_user_model().objects.filter(pk=account.pk).update(is_staff=True)
    browser = Client()
    for _ in range(5):
        r = browser.post(path, {"username": "annotator1", "password": "guess"}, REMOTE_ADDR="198.51.100.1")
        assert r.status_code == 200 and b"Too many" not in r.content
    # from another address too: the account is locked, not just the address
    r = Client().post(path, {"username": "annotator1", "password": PASSWORD, "next": "/"}, REMOTE_ADDR="203.0.113.5")
    assert r.status_code == 200, "signed in despite five wrong passwords just before"
    assert b"Too many failed sign-in attempts" in r.content and b"Try again in 15 minutes" in r.content
    assert "_auth_user_id" not in r.wsgi_request.session


def test_one_address_guessing_many_accounts_is_locked(db, settings):
    settings.LOGIN_FAILURE_LIMIT_PER_ADDRESS = 3
    browser = Client()
    for i in range(3):
        browser.post("/accounts/login/", {"username": f"user{i}", "password": "x"}, REMOTE_ADDR="198.51.100.9")
    r = browser.post("/accounts/login/", {"username": "someone", "password": "x"}, REMOTE_ADDR="198.51.100.9")
    assert b"Too many failed sign-in attempts" in r.content


def test_a_right_password_before_the_limit_signs_in_and_resets_the_count(account):
    browser = Client()
    for _ in range(4):
        browser.post("/accounts/login/", {"username": "annotator1", "password": "guess"})
    r = browser.post("/accounts/login/", {"username": "annotator1", "password": PASSWORD, "next": "/"})
    assert r.status_code == 302
    for _ in range(4):
        r = Client().post("/accounts/login/", {"username": "annotator1", "password": "guess"})
        assert b"Too many" not in r.content


@pytest.mark.parametrize("weak", ["password123", "12345678901", "short"])
def test_standard_password_validators_refuse_weak_passwords(db, weak):
    with pytest.raises(ValidationError):
        validate_password(weak)
    validate_password("an unusual passphrase 7")


def test_seed_demo_refuses_a_production_server_unless_forced(taxonomy, settings, capsys):
    settings.DEVELOPMENT = False
    with pytest.raises(CommandError, match="production server .* --force"):
        call_command("seed_demo")
    assert not get_user_model().objects.filter(username__startswith="expert").exists()
    call_command("seed_demo", "--force")
    out = capsys.readouterr().out
    expert_line = next(line for line in out.splitlines() if line.startswith("expert logins:"))
    assert "expert1-demo" not in expert_line
    password = expert_line.split("expert1 / ")[1].split(",")[0]
    assert len(password) >= 12
    assert get_user_model().objects.get(username="expert1").check_password(password)


def test_production_settings_use_lax_cookies():
    env = dict(
        os.environ, DEBUG="0", SECRET_KEY="x" * 50, AVCROWD_DEV="0", AVCROWD_ENV_FILE="", ALLOWED_HOSTS="a.example"
    )
    code = (
        "import config.settings as s; print(s.SESSION_COOKIE_SAMESITE, s.CSRF_COOKIE_SAMESITE, s.SESSION_COOKIE_SECURE,"
        " s.CACHES['default']['BACKEND'].rsplit('.', 1)[-1], s.REST_FRAMEWORK['NUM_PROXIES'])"
    )
    env["CELERY_BROKER_URL"] = "redis://redis:6379/0"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["Lax", "Lax", "True", "RedisCache", "1"]


def test_the_session_cookie_set_at_sign_in_is_lax(account):
    r = Client().post("/accounts/login/", {"username": "annotator1", "password": PASSWORD, "next": "/"})
    assert r.cookies["sessionid"]["samesite"] == "Lax" and r.cookies["sessionid"]["httponly"]


def _docker_excluded(path: str, patterns: list[str]) -> bool:
    """Docker's rule, simplified: a path is left out when it or one of its parent folders matches a pattern; later
    patterns win, and '!' brings a path back."""
    parts = path.split("/")
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        pat = pat.rstrip("/")
        candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(c, pat) or fnmatch.fnmatch(c, pat.replace("**/", "")) for c in candidates):
            excluded = not negate
    return excluded


def test_the_docker_context_leaves_out_secrets_local_data_and_history():
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    for path in (
        ".env",
        ".env.production",
        "var/avcrowd.sqlite3",
        "var/admin-password.txt",
        ".git/config",
        ".venv/bin/python",
        "staticfiles/frontend/site.css",
        "catalog/__pycache__/x.pyc",
    ):
        assert _docker_excluded(path, patterns), path
    for path in (
        "manage.py",
        "config/settings.py",
        "requirements.txt",
        ".env.example",
        "frontend/static/frontend/site.css",
    ):
        assert not _docker_excluded(path, patterns), path
