"""URL map. Each area owns its own urlpatterns module; this file only mounts them."""
import importlib

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView


def _optional(module: str):
    """Mount an area's urlpatterns when the module exists (areas land independently)."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            return []
        raise
    return getattr(mod, "urlpatterns", [])


urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/", include("annotation.api")),
    path("api/hit/", include((_optional("annotation.api_hit"), "api_hit"))),
    path("api/releases/", include((_optional("annotation.api_releases"), "api_releases"))),
    path("api/reports/", include((_optional("annotation.api_reports"), "api_reports"))),
    path("api/marketplace/", include((_optional("annotation.api_marketplace"), "api_marketplace"))),
    path("api/proposals/", include((_optional("proposals.api"), "api_proposals"))),
    path("proposals/", include((_optional("proposals.urls"), "proposals"))),
    path("releases/", include((_optional("frontend.views_releases"), "releases"))),
    path("reports/", include((_optional("frontend.views_reports"), "reports"))),
    path("ops/", include((_optional("frontend.views_ops"), "ops"))),
    path("", include("frontend.urls")),
]
