from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "catalog"
    verbose_name = "Catalog (classes, datasets, clips)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.contrib import admin  # noqa: PLC0415 - app registry ready only now

        from catalog import auth  # noqa: PLC0415 - connects the sign-in failure counters (signals)

        admin.site.login_form = auth.ThrottledAdminAuthenticationForm
