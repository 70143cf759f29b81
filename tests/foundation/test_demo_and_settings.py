import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from catalog.models import Clip, Dataset, GoldLabel

ROOT = Path(__file__).resolve().parents[2]


def manage(*args, env=None):
    full_env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "DEBUG", "SECRET_KEY", "DJANGO_SETTINGS_MODULE")
    }
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=120
    )


def test_seed_demo_creates_a_clickable_project_once(taxonomy, capsys, client, settings):
    settings.DEBUG = True  # a development server's start page lists the datasets (production: admins only)
    call_command("seed_demo")
    out = capsys.readouterr().out
    dataset = Dataset.objects.get(name="demo")
    clips = Clip.objects.filter(dataset=dataset)
    assert clips.count() >= 24 and clips.filter(is_gold=True).count() >= 2
    assert GoldLabel.objects.filter(clip__dataset=dataset).count() == clips.filter(is_gold=True).count()
    assert all(c.has_audio and c.has_video for c in clips)
    assert "admin login: admin / " in out
    call_command("seed_demo")
    assert Clip.objects.filter(dataset=dataset).count() == clips.count()
    assert "already present" in capsys.readouterr().out
    assert b"demo" in client.get("/").content


def test_a_malformed_database_url_gets_one_actionable_line():
    result = manage("check", env={"AVCROWD_DEV": "1", "DATABASE_URL": "mysql//oops"})
    assert result.returncode != 0
    assert "DATABASE_URL has scheme" in result.stderr and "allowed: postgres://" in result.stderr


@pytest.mark.parametrize("value", ["soon", "0", "9000"])
def test_a_bad_media_timeout_gets_one_actionable_line(value):
    result = manage("check", env={"AVCROWD_DEV": "1", "HIT_MEDIA_TIMEOUT_SECONDS": value})
    assert result.returncode != 0
    assert f"HIT_MEDIA_TIMEOUT_SECONDS={value!r} is not allowed; allowed: seconds from 1 to 600" in result.stderr


def test_production_settings_require_a_secret_key():
    result = manage("check", env={"DEBUG": "0", "AVCROWD_DEV": "0"})
    assert result.returncode != 0 and "SECRET_KEY is not set" in result.stderr


def test_check_deploy_is_clean_with_production_settings():
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env={
            "DEBUG": "0",
            "AVCROWD_DEV": "0",
            "SECRET_KEY": "k" * 20 + "x9Zq!" * 10,
            "ALLOWED_HOSTS": "avcrowd.example.org",
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_migrations_match_the_models():
    result = manage("makemigrations", "--check", "--dry-run", env={"AVCROWD_DEV": "1"})
    assert result.returncode == 0, result.stdout + result.stderr


def test_demo_links_hand_off_to_the_local_mturk_stand_in(taxonomy, client, capsys, settings):
    settings.DEBUG = True
    call_command("seed_demo")
    url = capsys.readouterr().out.split("batch ready to annotate: ")[1].split()[0]
    from urllib.parse import quote

    from django.conf import settings

    assert f"turkSubmitTo={quote(settings.PUBLIC_BASE_URL + '/demo', safe='')}" in url and "workerId=DEMO_WORKER" in url
    # the start page's links hand off to this server as the browser reached it (a bare "/demo" is refused)
    assert "turkSubmitTo=http%3A%2F%2Ftestserver%2Fdemo" in client.get("/").content.decode()
    received = client.post("/demo/mturk/externalSubmit", {"assignmentId": "DEMO_A1"})
    assert received.status_code == 200 and b"DEMO_A1" in received.content
