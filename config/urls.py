"""URL map: each app owns its urlpatterns module (REST API in the domain apps, pages in frontend); this file
only mounts them."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from frontend import health, views_clip
from frontend.views import legacy_admin_redirect

urlpatterns = [
    # health: public (healthchecks); metrics: its own bearer token (frontend/health.py)
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics, name="metrics"),
    path("admin/annotation/<str:model>/", legacy_admin_redirect),
    path("admin/annotation/<str:model>/<path:rest>", legacy_admin_redirect),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # the split view serves Swagger UI's start-up script as a file (CSP script-src 'self': no inline script)
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    path("api/", include(("catalog.api_steps", "api_steps"))),
    path("api/", include(("crowd.api_steps", "api_crowd_steps"))),
    path("api/", include(("proposals.api_steps", "api_proposals_steps"))),
    path("api/", include("catalog.api")),
    path("api/hit/", include(("crowd.api_hit", "api_hit"))),
    path("api/releases/", include(("labels.api", "api_releases"))),
    path("api/reports/", include(("reports.api", "api_reports"))),
    path("api/marketplace/", include(("crowd.api_marketplace", "api_marketplace"))),
    path("api/proposals/", include(("proposals.api", "api_proposals"))),
    path("proposals/", include(("frontend.views_proposals", "proposals"))),
    path("releases/", include(("frontend.views_releases", "releases"))),
    path("releases/", include(("frontend.views_clip", "release_clips"))),
    path("reports/", include(("frontend.views_reports", "reports"))),
    path("ops/", include(("frontend.views_ops", "ops"))),
    path("ops/", include(("frontend.views_quality", "quality"))),
    path("ops/", include(("frontend.views_review", "review"))),
    path("ops/", include(("frontend.views_steps", "steps"))),
    path("ops/", include((views_clip.ops_urlpatterns, "clip_pages"))),
    path("", include("frontend.urls")),
]
