from django.apps import apps
from django.http import Http404, HttpResponsePermanentRedirect
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from catalog.access import admin_page, public_page
from crowd.selectors.overview import overview


@public_page
def home(request):
    base_url = request.build_absolute_uri("/").rstrip("/")
    return render(request, "frontend/home.html", {"overview": overview(base_url), "user": request.user})


@public_page
@csrf_exempt
@require_POST
def demo_mturk_receiver(request):
    """A local stand-in for MTurk's /mturk/externalSubmit, so the demo's hand-off ends on a page that shows what
    MTurk would have received (demo links pass turkSubmitTo=<this server>/demo)."""
    return render(request, "frontend/demo_mturk_received.html", {"fields": sorted(request.POST.items())})


@admin_page
def legacy_admin_redirect(request, model, rest=""):
    """Admin pages moved when the annotation app was split (/admin/annotation/<model>/... is now under the
    model's app): old bookmarks get a permanent redirect to the same page."""
    for app_label in ("catalog", "crowd", "labels", "reports"):
        try:
            apps.get_model(app_label, model)
        except LookupError:
            continue
        target = f"/admin/{app_label}/{model}/{rest}"
        if request.META.get("QUERY_STRING"):
            target += "?" + request.META["QUERY_STRING"]
        return HttpResponsePermanentRedirect(target)
    raise Http404("no such admin page")
