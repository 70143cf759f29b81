import os
from pathlib import Path

from celery import Celery
from celery.beat import PersistentScheduler

from catalog.observability import connect_celery_signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("avcrowd")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()  # <app>/tasks.py of every installed app
connect_celery_signals()  # task ids on log lines, task outcomes for /metrics


class HeartbeatScheduler(PersistentScheduler):
    """Celery beat's file-backed scheduler that also touches CELERY_BEAT_HEARTBEAT_FILE on every tick, so that
    its healthcheck (`python config/healthcheck.py beat`) can tell a live beat from a hung or dead one."""

    def tick(self, *args, **kwargs):
        try:
            Path(self.app.conf.beat_heartbeat_file).touch()
        except (OSError, TypeError):  # an unwritable file must not stop the schedule
            pass
        return super().tick(*args, **kwargs)
