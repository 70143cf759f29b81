from django.apps import AppConfig


class CrowdConfig(AppConfig):
    name = "crowd"
    verbose_name = "Crowd (batches, workers, marketplaces)"
    default_auto_field = "django.db.models.BigAutoField"
