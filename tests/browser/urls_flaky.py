"""Test-only URL map: the HIT page's session request fails a set number of times first (a database restarting,
a deploy), then is answered by the real view."""

from django.http import JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from crowd.api_hit import session

FLAKY = {"failures_left": 0, "status": 503, "calls": 0}


@csrf_exempt
def flaky_session(request, batch_uuid):
    FLAKY["calls"] += 1
    if FLAKY["failures_left"] > 0:
        FLAKY["failures_left"] -= 1
        return JsonResponse({"error": "the database is restarting"}, status=FLAKY["status"])
    return session(request, batch_uuid)


urlpatterns = [
    path("api/hit/<str:batch_uuid>/session", flaky_session),
    path("", include("tests.browser.urls")),
]
