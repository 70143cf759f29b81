import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("avcrowd")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
for _related in ("tasks_releases", "tasks_reports", "tasks_marketplace"):
    app.autodiscover_tasks(["annotation"], related_name=_related)
