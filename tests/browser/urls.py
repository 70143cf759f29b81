"""Test-only URL map: the real one plus a stand-in for MTurk's /mturk/externalSubmit that records what it got."""

from django.http import HttpResponse
from django.urls import include, path
from django.utils.html import escape
from django.views.decorators.csrf import csrf_exempt

RECEIVED: list[dict] = []


@csrf_exempt
def external_submit(request):
    RECEIVED.append({"method": request.method, **request.POST.dict()})
    got = escape(request.POST.get("assignmentId", ""))
    return HttpResponse(f"<!doctype html><h1 id='mturk-received'>MTurk received assignmentId={got}</h1>")


urlpatterns = [
    path("mturk/externalSubmit", external_submit),
    path("", include("config.urls")),
]
