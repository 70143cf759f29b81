#!/usr/bin/env python
import os
import sys
from pathlib import Path


def _use_project_virtualenv():
    """`python manage.py ...` in a new shell, with a Python that lacks Django: run again with the virtualenv that
    `make run` created (.venv), so the README's commands work as written."""
    try:
        import django  # noqa: F401, PLC0415 - only probing whether this Python has Django
    except ImportError:
        venv_python = Path(__file__).resolve().parent / ".venv" / "bin" / "python"
        if venv_python.exists() and not os.environ.get("AVCROWD_REEXEC"):
            os.environ["AVCROWD_REEXEC"] = "1"
            os.execv(str(venv_python), [str(venv_python), *sys.argv])
        sys.exit("Django is not installed for this Python: run `make run` first (it creates .venv and installs it)")


def main():
    _use_project_virtualenv()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.core.exceptions import ImproperlyConfigured  # noqa: PLC0415 - after the settings variable
    from django.core.management import execute_from_command_line  # noqa: PLC0415

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:  # a setting is missing or wrong: its one-line message, not a traceback
        sys.exit(f"avcrowd settings: {exc}")


if __name__ == "__main__":
    main()
