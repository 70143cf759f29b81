from django.apps import apps
from django.conf import settings
from django.http import Http404, HttpResponsePermanentRedirect
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from catalog.access import admin_page, is_admin, is_researcher, public_page
from crowd.selectors.overview import overview


@public_page
def home(request):
    """The start page. Dataset counts and batch links only for admins and researchers, or on a development
    server (DEBUG); demo links (an MTurk-style arrival with a worker id of its own for every visitor, handing off to
    this server's stand-in receiver) only where that hand-off is on (HIT_SUBMIT_TO_SELF)."""
    show = settings.DEBUG or is_admin(request.user) or is_researcher(request.user)
    base_url = request.build_absolute_uri("/").rstrip("/")
    data = overview(base_url, demo_links=settings.HIT_SUBMIT_TO_SELF) if show else None
    return render(request, "frontend/home.html", {"overview": data, "user": request.user})


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
