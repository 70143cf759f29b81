"""The HIT page: one batch of clips for one worker. The page is a shell; the browser talks to /api/hit/ (see
docs/hit-page.md). It may be framed by MTurk's worker sites (CSP frame-ancestors from `frameable`)."""

from django.conf import settings
from django.shortcuts import render
from django.urls import path

from catalog.access import public_page
from crowd.models import Batch
from crowd.services.assignments import MAX_COMMENT

from .middleware import frameable

API_BASE = "/api/hit/"


@public_page
@frameable
def hit_page(request, batch_uuid):
    if not Batch.objects.filter(uuid=batch_uuid).exists():
        # Shown inside the MTurk frame too, so it stays frameable; it reveals nothing about other batches.
        return render(request, "frontend/hit/not_found.html", status=404)
    return render(
        request,
        "frontend/hit/page.html",
        {
            "batch_uuid": str(batch_uuid),
            "api_base": API_BASE,
            "media_timeout": settings.HIT_MEDIA_TIMEOUT_SECONDS,
            "max_comment": MAX_COMMENT,
        },
    )


urlpatterns = [
    path("hit/<uuid:batch_uuid>/", hit_page, name="hit"),
]
