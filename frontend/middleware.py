"""Page-wide behaviour: the page-side handler of the project's errors (AvcrowdErrorMiddleware, with the
`back_on_error` decorator for form posts), and Content-Security-Policy frame-ancestors: pages may be framed only by
MTurk's worker sites and the origins listed in FRAME_ANCESTORS (views opt in with the `frameable` decorator); every
other page is DENY."""

from functools import lru_cache, wraps

from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse

from catalog.errors import AvcrowdError

ERROR_TITLES = {400: "Not accepted", 403: "Not allowed", 404: "Not found"}


def back_on_error(to):
    """For a view that handles a form post: where the poster goes back to when a service refuses it (an
    AvcrowdError), with the error as a message. `to` is a URL name without arguments, or a callable
    (request, *args, **kwargs) -> URL."""

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            request.avcrowd_error_back = to(request, *args, **kwargs) if callable(to) else reverse(to)
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


class AvcrowdErrorMiddleware:
    """The one page-side handler of AvcrowdError. A form post to a view with `back_on_error` goes back to the page
    that holds the form, with the error as a message (what the poster typed is on that page to fix); anything
    else gets a readable error page with the error's status code (400, 403, 404)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, AvcrowdError):
            return None
        back = getattr(request, "avcrowd_error_back", None)
        if request.method == "POST" and back:
            messages.error(request, exception.message)
            return redirect(back)
        details = exception.details if isinstance(exception.details, (list, tuple)) else []
        return render(
            request,
            "frontend/error.html",
            {
                "title": ERROR_TITLES.get(exception.status_code, "Not accepted"),
                "error": exception,
                "details": details,
            },
            status=exception.status_code,
        )


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


def content_security_policy(frame: str) -> str:
    """The Content-Security-Policy of every response: scripts only from this server's own files (no inline script,
    no inline handler, no eval), connections to this server only, forms posted to this server or MTurk's worker
    sites (the HIT page's hand-off); media and images may come from the media store (presigned URLs) and remote
    clip URLs. `frame` is the frame-ancestors source list."""
    return _content_security_policy(frame, tuple(settings.MTURK_SUBMIT_ORIGINS))


@lru_cache(maxsize=16)  # the same few strings on every response
def _content_security_policy(frame: str, submit_origins: tuple[str, ...]) -> str:
    form_targets = " ".join(dict.fromkeys(submit_origins))
    return (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob: https:; "
        "media-src 'self' blob: https: http:; connect-src 'self'; worker-src 'self' blob:; object-src 'none'; "
        f"base-uri 'self'; form-action 'self' {form_targets}; frame-ancestors {frame}"
    )


class FrameAncestorsMiddleware:
    """Sets the Content-Security-Policy (content_security_policy) on every response, with frame-ancestors 'none'
    except on `frameable` views (MTurk's worker sites and FRAME_ANCESTORS)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.process_response(request, self.get_response(request))

    def process_response(self, request, response):
        if getattr(response, "avcrowd_frameable", False):
            response.headers["Content-Security-Policy"] = content_security_policy(" ".join(frame_ancestors()))
            response.xframe_options_exempt = True
            if "X-Frame-Options" in response.headers:
                del response.headers["X-Frame-Options"]
        else:
            response.headers.setdefault("Content-Security-Policy", content_security_policy("'none'"))
        return response
