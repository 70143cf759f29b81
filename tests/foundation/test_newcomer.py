"""The newcomer's path: after `make run`, the README's commands work as written in a new shell; the demo needs
nothing else; the start page's links open a working HIT."""

from __future__ import annotations

import io
import os
import re
import shlex
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command

from config.env import load_env_file

ROOT = Path(__file__).resolve().parent.parent.parent


def _new_shell_env(tmp_path, **extra) -> dict:
    """A new shell: no DEBUG/AVCROWD_DEV/DJANGO_* variables, a Python without Django first on PATH."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "AVCROWD_", "DEBUG", "SECRET_KEY", "DATABASE_URL", "CELERY_"))
    }
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p)
    env["AVCROWD_VAR_DIR"] = str(tmp_path / "var")
    env.update(extra)
    return env


def test_a_settings_file_is_read_and_the_environment_wins(tmp_path, monkeypatch):
    path = tmp_path / ".env"
    path.write_text(
        "# comment\n\nexport AVC_T_A=1\nAVC_T_B='two words'\nAVC_T_C=plain # trailing comment\nAVC_T_D=\"q#x\"\n"
        "AVC_T_E=from-file\n"
    )
    monkeypatch.setenv("AVC_T_E", "from-env")
    for key in "ABCD":
        monkeypatch.delenv(f"AVC_T_{key}", raising=False)
    loaded = load_env_file(path)
    assert sorted(loaded) == ["AVC_T_A", "AVC_T_B", "AVC_T_C", "AVC_T_D"]
    assert [os.environ[f"AVC_T_{k}"] for k in "ABCDE"] == ["1", "two words", "plain", "q#x", "from-env"]
    for key in "ABCD":
        monkeypatch.delenv(f"AVC_T_{key}")
    assert load_env_file(tmp_path / "missing") == [] and load_env_file("") == []


def test_a_malformed_settings_file_is_refused_with_its_line(tmp_path):
    path = tmp_path / ".env"
    path.write_text("GOOD=1\nthis is not a setting\n")
    with pytest.raises(ImproperlyConfigured, match=r"\.env:2: 'this is not a setting' is not a setting"):
        load_env_file(path)


def test_manage_py_in_a_new_shell_uses_the_settings_make_run_wrote(tmp_path):
    """`python manage.py ...` with the system Python and no variables: manage.py runs itself with .venv's Python,
    and the settings read the .env that `make run` writes (DEBUG=1). Without it: one line, no traceback."""
    if not (ROOT / ".venv" / "bin" / "python").exists():
        pytest.skip("no .venv in this checkout")
    env_file = tmp_path / "dev.env"
    env_file.write_text("# Written by make run\nDEBUG=1\nPUBLIC_BASE_URL=http://127.0.0.1:8000\n")
    env = _new_shell_env(tmp_path, AVCROWD_ENV_FILE=str(env_file))
    out = subprocess.run(
        ["bash", "-c", "python manage.py check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert "System check identified no issues" in out.stdout

    env["AVCROWD_ENV_FILE"] = str(tmp_path / "absent.env")
    out = subprocess.run(
        ["bash", "-c", "python manage.py check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().startswith("avcrowd settings: SECRET_KEY is not set.")


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    pipeline = text.split("## The pipeline, command by command", 1)[1].split("\n## ", 1)[0]
    commands = []
    for line in pipeline.splitlines():
        line = line.split("#", 1)[0].strip()
        for part in line.split(";"):
            part = part.strip()
            if part.startswith("python manage.py "):
                commands.append(part)
    return commands


def test_the_readme_shows_shell_commands_that_parse():
    commands = _readme_commands()
    assert len(commands) >= 15
    for command in commands:
        args = shlex.split(command)
        assert not any(set(a) & set("[]|<>") for a in args), f"not a command one can paste: {command}"


@pytest.mark.slow
def test_every_readme_command_runs_or_refuses_cleanly_after_make_run(db, tmp_path, monkeypatch, settings):
    """Each `python manage.py ...` of the README's pipeline, on the database `make run` leaves (the demo seeded):
    it works, or it refuses with a message (CommandError), never an exception from inside."""
    call_command("seed_demo", stdout=open(os.devnull, "w"))
    monkeypatch.chdir(tmp_path)  # files the commands write (report/, v1.csv) stay in the test's folder
    outcomes = {}
    for command in _readme_commands():
        args = shlex.split(command)[2:]
        try:
            call_command(*args, stdout=open(os.devnull, "w"), stderr=open(os.devnull, "w"))
            outcomes[command] = "ok"
        except CommandError as exc:
            outcomes[command] = f"refused: {str(exc).splitlines()[0]}"
        except SystemExit as exc:  # argparse: a usage error, printed as such
            outcomes[command] = f"usage error {exc.code}"
    usage = {c: o for c, o in outcomes.items() if o.startswith("usage")}
    assert not usage, usage
    # the commands that need no file of the user's work on the demo
    assert outcomes["python manage.py load_taxonomy"] == "ok"
    assert outcomes["python manage.py create_user rita --role researcher"] == "ok"
    refused = [o for o in outcomes.values() if o.startswith("refused")]
    assert all(
        re.search(r"(no such file|does not exist|no dataset|not found|unknown|no release|no )", o, re.I)
        for o in refused
    ), refused


def test_seed_demo_loads_the_class_list_itself(db):
    from catalog.models import TaxonomyClass
    from catalog.selectors.taxonomy import clear_cache
    from crowd.models import Batch

    TaxonomyClass.objects.all().delete()  # a database where load_taxonomy never ran (rolled back after the test)
    clear_cache()
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    clear_cache()
    assert TaxonomyClass.objects.count() == 309
    assert "class list: none was loaded, so the default one was" in out.getvalue()
    assert Batch.objects.filter(dataset__name="demo").exists()


def test_the_start_pages_batch_links_open_a_working_demo_hit(client, db, settings):
    settings.DEBUG = True  # `make run`: a development server's start page lists the demo batches
    call_command("seed_demo", stdout=open(os.devnull, "w"))
    page = client.get("/", HTTP_HOST="127.0.0.1:8000").content.decode()
    links = re.findall(r'href="([^"]*/hit/[^"]+)"', page)
    assert links, "the start page shows no batch to try"
    url = urlparse(links[0].replace("&amp;", "&"))
    assert url.scheme == "http" and url.netloc == "127.0.0.1:8000"
    params = parse_qs(url.query)
    assert params["turkSubmitTo"] == ["http://127.0.0.1:8000/demo"]
    session = client.get(f"/api{url.path}session?{url.query}", HTTP_HOST="127.0.0.1:8000")
    assert session.status_code == 200, session.content
    assert session.json()["status"] == "in_progress" and len(session.json()["clips"]) > 0
