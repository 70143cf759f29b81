"""Reading settings from the environment, with errors a person can act on."""

import os
import re
from urllib.parse import urlparse

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

SUPPORTED_DB_SCHEMES = ("sqlite", "postgres", "postgresql", "pgsql")


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean; allowed: 1/0, true/false, yes/no, on/off")


def env_seconds(name: str, default: float, low: float, high: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise ImproperlyConfigured(f"{name}={raw!r} is not allowed; allowed: seconds from {low:g} to {high:g}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def sqlite_options() -> dict:
    """SQLite as a server's database: WAL (readers never wait for the writer), write transactions that take the
    lock when they begin (BEGIN IMMEDIATE: no deadlock between two readers upgrading), and a busy timeout so a
    writer waits for the lock instead of failing "database is locked". Applied however the database is named."""
    return {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }


def database_from_env(default_sqlite_path) -> dict:
    url = os.environ.get("DATABASE_URL", "").strip()
    if not url:
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": str(default_sqlite_path), "OPTIONS": sqlite_options()}
    scheme = urlparse(url).scheme
    if scheme not in SUPPORTED_DB_SCHEMES:
        raise ImproperlyConfigured(
            f"DATABASE_URL has scheme {scheme or '(none)'!r}; allowed: postgres://user@host:port/dbname "
            f"or sqlite:///path/to/file.sqlite3"
        )
    try:
        # DATABASE_HEALTH_CHECKS=0 skips the health check of a kept connection before the first query of every
        # request (config/db/postgresql: a look at the socket, and a `SELECT 1` when the server has sent something
        # or the last one is DATABASE_HEALTH_CHECK_SECONDS old); then a connection the server dropped fails one
        # request before Django replaces it
        config = dj_database_url.parse(
            url, conn_max_age=60, conn_health_checks=env_bool("DATABASE_HEALTH_CHECKS", True)
        )
    except Exception as exc:  # dj_database_url raises several types
        raise ImproperlyConfigured(
            f"DATABASE_URL could not be parsed ({exc}); expected postgres://user@host:port/dbname"
        ) from exc
    if scheme != "sqlite" and not config.get("NAME"):
        raise ImproperlyConfigured("DATABASE_URL names no database; expected postgres://user@host:port/dbname")
    if scheme != "sqlite":  # an unreachable server is an error within seconds, not a request hanging on it
        config.setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
        # Django's backend, with a health check that looks at the socket before it sends SELECT 1
        # (config/db/postgresql/base.py, DATABASE_HEALTH_CHECK_SECONDS)
        config["ENGINE"] = "config.db.postgresql"
        # statements run through its prepared_cursor() (the autosave's two) are prepared after 5 runs on a
        # connection; Django's own cursors bind on the client and are never prepared
        config["OPTIONS"].setdefault("prepare_threshold", 5)
    else:
        config["OPTIONS"] = {**sqlite_options(), **(config.get("OPTIONS") or {})}
        config["CONN_MAX_AGE"] = 0  # SQLite connections are cheap; a kept one would pin an old WAL snapshot
        config["CONN_HEALTH_CHECKS"] = False
    return config


def env_int(name: str, default: int, low: int, high: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise ImproperlyConfigured(f"{name}={raw!r} is not allowed; allowed: whole numbers from {low} to {high}")
    return value


def load_env_file(path) -> list[str]:
    """Read KEY=VALUE lines of a local settings file (the `.env` that `make run` writes) into the environment.

    A variable already set in the environment wins, so a shell, CI or docker compose can override the file.
    Blank lines and `# comments` are skipped, `export KEY=...` is accepted, and a value may be quoted.
    Returns the names it set. A missing file is no error; a malformed line is, with its file and line number.
    """
    if not path:
        return []
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ImproperlyConfigured(f"{path}: cannot be read ({exc}); fix it or set AVCROWD_ENV_FILE= to skip it")
    loaded = []
    for lineno, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if text.startswith("export "):
            text = text[len("export ") :].strip()
        key, sep, value = text.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ImproperlyConfigured(
                f"{path}:{lineno}: {line!r} is not a setting; expected KEY=value (letters, digits and _ in KEY)"
            )
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        elif " #" in value:  # an unquoted value ends at a comment
            value = value.split(" #", 1)[0].rstrip()
        if key not in os.environ:
            os.environ[key] = value
            loaded.append(key)
    return loaded
