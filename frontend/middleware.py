"""Content-Security-Policy frame-ancestors: pages may be framed only by MTurk's worker sites and the
origins listed in FRAME_ANCESTORS (views opt in with the `frameable` decorator); every other page is DENY."""

from functools import wraps

from django.conf import settings


def frameable(view):
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        response.avcrowd_frameable = True
        return response

    return wrapper


def frame_ancestors() -> list[str]:
    origins = list(dict.fromkeys(settings.MTURK_FRAME_ORIGINS + settings.FRAME_ANCESTORS_EXTRA))
    return ["'self'"] + origins


class FrameAncestorsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if getattr(response, "avcrowd_frameable", False):
            response.headers["Content-Security-Policy"] = "frame-ancestors " + " ".join(frame_ancestors())
            response.xframe_options_exempt = True
            if "X-Frame-Options" in response.headers:
                del response.headers["X-Frame-Options"]
        else:
            response.headers.setdefault("Content-Security-Policy", "frame-ancestors 'none'")
        return response
