from django.apps import AppConfig


class AnnotationConfig(AppConfig):
    """The app the catalog, crowd, labels and reports apps were split from. It holds no code and no models, only
    its historical migrations: they create the tables (named annotation_*) that those apps took over by state-only
    migrations, so existing databases migrate forward without copying data (docs/architecture.md)."""

    name = "annotation"
    verbose_name = "Annotation (historical migrations)"
    default_auto_field = "django.db.models.BigAutoField"
