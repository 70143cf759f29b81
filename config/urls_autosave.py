"""The URL map of the HIT page's autosave alone (config.handlers.AutosaveHandler): the same pattern, route, namespace
and view as in config.urls (`api/hit/` + crowd.api_hit's "answer"), without the hundred patterns before it."""

from django.urls import include, path

from crowd import api_hit

urlpatterns = [
    path("api/hit/", include(([p for p in api_hit.urlpatterns if p.name == "answer"], "api_hit"))),
]
