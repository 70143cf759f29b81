"""Pointing the test process's Celery app at another broker for a while (a dead one, a private Redis)."""

from __future__ import annotations

import contextlib

from celery import current_app


def _reset_pools(app):
    # drop the app's references only: the pools themselves live in kombu's registry, keyed by broker URL, and are
    # used again when the URL comes back (closing them would break every later send to that broker)
    app._pool = None
    app.amqp._producer_pool = None


@contextlib.contextmanager
def broker_at(url: str):
    """Send tasks to the broker at ``url`` (not in-process) inside the block; restored afterwards."""
    app = current_app
    previous = app.conf.task_always_eager, app.conf.broker_write_url, app.conf.broker_read_url
    app.conf.task_always_eager = False
    app.conf.broker_write_url = app.conf.broker_read_url = url
    _reset_pools(app)
    try:
        yield app
    finally:
        app.conf.task_always_eager, app.conf.broker_write_url, app.conf.broker_read_url = previous
        _reset_pools(app)
