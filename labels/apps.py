from django.apps import AppConfig


class LabelsConfig(AppConfig):
    name = "labels"
    verbose_name = "Labels (releases)"
    default_auto_field = "django.db.models.BigAutoField"
