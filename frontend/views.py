from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from annotation.selectors.overview import overview


def home(request):
    return render(request, "frontend/home.html", {"overview": overview(), "user": request.user})


@csrf_exempt
@require_POST
def demo_mturk_receiver(request):
    """A local stand-in for MTurk's /mturk/externalSubmit, so the demo's hand-off ends on a page that shows what
    MTurk would have received (demo links pass turkSubmitTo=<this server>/demo)."""
    return render(request, "frontend/demo_mturk_received.html", {"fields": sorted(request.POST.items())})
