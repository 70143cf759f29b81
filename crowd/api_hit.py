"""JSON API of the HIT page (/api/hit/, contract in docs/annotators.md). Thin: parse and call services.

Access rule `public_hit`: public, authenticated by the signed HIT token (header X-HIT-Token) that the session
endpoint issues and the crowd services check; csrf_exempt because the page runs inside the MTurk iframe on another
site and carries no session cookie there. Errors are mapped by catalog.http.json_errors; a 404 says only
"not found", whatever was not found.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import wraps
from urllib.parse import urlparse

from django.conf import settings
from django.http import JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from catalog.access import public_hit
from catalog.errors import AvcrowdError, NotFound, ValidationError
from catalog.http import error_response, json_errors
from catalog.selectors.clips import clip_media_url
from catalog.selectors.taxonomy import class_names, meta_labels
from catalog.throttles import client_hash, client_ip, throttle_check, throttle_checks
from crowd.selectors.crowd import assignment_answers, assignment_by_uuid, assignment_handoff, batch_by_uuid, batch_items
from crowd.services import assignments as svc
from crowd.services.binding import assignment_open

MTURK_PREVIEW_ID = "ASSIGNMENT_ID_NOT_AVAILABLE"
MAX_BODY = 256 * 1024
# the browser secret that binds an assignment to the browser that started it (crowd.services.binding): sent by the
# HIT page as a header (kept in its storage) and as an HttpOnly cookie scoped to the batch's session endpoint
SECRET_HEADER = "X-HIT-Secret"
SECRET_COOKIE = "avcrowd_hit"
SECRET_COOKIE_AGE = 30 * 24 * 3600
# sent by the HIT page's own script: a link or form from another site cannot add it, so a signed-in annotator's
# session (which rides on the login cookie) starts only from this site's HIT page
PAGE_HEADER = "X-HIT-Page"
MARKETPLACE_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")


def _throttle_writes(request, kwargs) -> None:
    throttle_checks(
        request,
        [
            ("hit_write_ip", client_ip(request), "from this address"),
            ("hit_write_assignment", kwargs.get("assignment_uuid", ""), "for this assignment"),
        ],
    )


def hit_endpoint(*methods: str, write: bool = False):
    """A HIT API view: public (token checked by the services), csrf-exempt, these methods only, rate-limited per
    address and assignment (`write`), errors as JSON (404s reveal nothing), never cached."""

    def decorator(view):
        def limited(request, *args, **kwargs):
            if write:
                _throttle_writes(request, kwargs)
            return view(request, *args, **kwargs)

        inner = json_errors(require_http_methods(list(methods))(limited), quiet_not_found=True)

        @wraps(view)
        def wrapper(request, *args, **kwargs):
            return no_store(inner(request, *args, **kwargs))

        return public_hit(csrf_exempt(wrapper))

    return decorator


NO_STORE = ("Cache-Control", "no-store")  # every answer of the HIT API: it carries a worker's answers and tokens


def no_store(response):
    """Every answer of the HIT API: never cached (NO_STORE)."""
    response[NO_STORE[0]] = NO_STORE[1]
    return response


def refusal(exc: AvcrowdError):
    """The HIT API's answer to a refused request: json_errors' (a 404 says only "not found"), never cached."""
    return no_store(error_response(exc, quiet_not_found=True))


def _body(request) -> dict:
    body = request.body
    if len(body) > MAX_BODY:
        raise ValidationError(f"the body is larger than {MAX_BODY} bytes", field="body")
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationError(f"the body is not valid JSON ({exc})", field="body")
    if not isinstance(data, dict):
        raise ValidationError("the body must be a JSON object", field="body")
    return data


@dataclass
class Arrival:
    preview: bool
    backend: str = ""
    worker_id: str = ""
    assignment_id: str = ""
    hit_id: str = ""
    turk_submit_to: str = ""
    user: object = None


def submit_origins(request) -> list[str]:
    """Where MTurk may hand a worker back: its production and sandbox worker sites (settings.MTURK_SUBMIT_ORIGINS),
    and this server itself when the demo's stand-in receiver is on (HIT_SUBMIT_TO_SELF, development)."""
    origins = list(settings.MTURK_SUBMIT_ORIGINS)
    if settings.HIT_SUBMIT_TO_SELF:
        origins.append(request.build_absolute_uri("/").rstrip("/"))
    return origins


def clean_submit_to(request, submit_to: str) -> str:
    parsed = urlparse(submit_to)
    origin = f"{parsed.scheme}://{parsed.netloc}"
    allowed = submit_origins(request)
    path_ok = parsed.path.rstrip("/") in ("", "/demo" if origin not in settings.MTURK_SUBMIT_ORIGINS else "")
    if origin not in allowed or not path_ok or parsed.query or parsed.fragment or parsed.params:
        raise ValidationError(
            f"turkSubmitTo {submit_to!r} is not one of MTurk's worker sites; allowed: {', '.join(allowed)}",
            field="turkSubmitTo",
        )
    return submit_to.rstrip("/")


def _marketplace_id(q, key: str, *, required: bool = True) -> str:
    value = q.get(key, "").strip()
    if (value or required) and not MARKETPLACE_ID.match(value):
        raise ValidationError(
            f"{key} {value[:80]!r} is not a marketplace id; allowed: 1-200 letters, digits, '_', '-', '.', ':'",
            field=key,
        )
    return value


def parse_arrival(request) -> Arrival:
    """MTurk ExternalQuestion parameters, Prolific parameters, or an in-house login; otherwise a preview. The
    hand-off of Prolific and in-house work comes from the server's settings, never from the URL."""
    q = request.GET
    if any(k in q for k in ("assignmentId", "workerId", "hitId", "turkSubmitTo")):
        assignment_id = q.get("assignmentId", "").strip()
        worker_id = q.get("workerId", "").strip()
        if not assignment_id or assignment_id == MTURK_PREVIEW_ID or not worker_id:
            return Arrival(preview=True, backend="mturk")
        submit_to = q.get("turkSubmitTo", "").strip()
        if submit_to:
            submit_to = clean_submit_to(request, submit_to)
        return Arrival(
            False,
            "mturk",
            _marketplace_id(q, "workerId"),
            _marketplace_id(q, "assignmentId"),
            _marketplace_id(q, "hitId", required=False),
            submit_to,
        )
    if "PROLIFIC_PID" in q:
        pid = q.get("PROLIFIC_PID", "").strip()
        if not pid:
            raise ValidationError("PROLIFIC_PID is empty", field="PROLIFIC_PID")
        return Arrival(
            False,
            "prolific",
            _marketplace_id(q, "PROLIFIC_PID"),
            _marketplace_id(q, "SESSION_ID", required=False),
            _marketplace_id(q, "STUDY_ID", required=False),
        )
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        if not request.headers.get(PAGE_HEADER) or request.headers.get("Sec-Fetch-Site") in ("cross-site", "same-site"):
            raise ValidationError(
                f"a signed-in annotator's task starts only from this site's HIT page (it sends the {PAGE_HEADER} "
                "header); a link or request from another site cannot start it. Open the task at /hit/<batch>/",
                field=PAGE_HEADER,
            )
        return Arrival(False, "inhouse", user.get_username(), user=user)
    return Arrival(preview=True)


def _clip_json(item, request) -> dict:
    clip = item.clip
    return {
        "video_id": clip.video_id,
        "media_url": clip_media_url(clip, request),
        "proposals": item.proposals,
        "has_audio": clip.has_audio,
        "has_video": clip.has_video,
    }


@hit_endpoint("GET")
def session(request, batch_uuid):
    throttle_check(request, "hit_session_ip", client_ip(request), "from this address")
    batch = batch_by_uuid(batch_uuid)
    if batch is None:
        raise NotFound(f"no batch {batch_uuid}")
    arrival = parse_arrival(request)
    if not arrival.preview:
        worker_key = f"{arrival.backend}:{arrival.worker_id}"
        throttle_check(request, "hit_session_worker", worker_key, "for this worker id")
    items = batch_items(batch)
    data = {
        "preview": arrival.preview,
        "batch_size": len(items),
        "classes": class_names(),
        "meta": meta_labels(),
        "position": 0,
        "answers": {},
        "handoff": None,
    }
    if arrival.preview:
        data.update(
            token=None, assignment=None, status="preview", clips=[_clip_json(item, request) for item in items[:1]]
        )
        return JsonResponse(data)
    assignment, secret = assignment_open(
        batch,
        backend=arrival.backend,
        worker_external_id=arrival.worker_id,
        external_assignment_id=arrival.assignment_id,
        hit_id=arrival.hit_id,
        turk_submit_to=arrival.turk_submit_to,
        user=arrival.user,
        secret=request.headers.get(SECRET_HEADER) or request.COOKIES.get(SECRET_COOKIE),
        client=client_hash(request),
    )
    data.update(
        secret=secret,
        token=svc.hit_token(assignment),
        assignment=str(assignment.uuid),
        status=assignment.status,
        position=assignment.position,
        clips=[_clip_json(item, request) for item in items],
        answers=assignment_answers(assignment),
        handoff=assignment_handoff(assignment),
        feedback=assignment.feedback or None,
    )
    response = JsonResponse(data)
    if secret:
        # inside MTurk's frame the page is a third party: the cookie must be SameSite=None (HTTPS only); the
        # page's storage copy (header) covers browsers that drop third-party cookies
        secure = request.is_secure()
        response.set_cookie(
            SECRET_COOKIE,
            secret,
            max_age=SECRET_COOKIE_AGE,
            path=f"/api/hit/{batch.uuid}/",
            secure=secure,
            httponly=True,
            samesite="None" if secure else "Lax",
        )
    return response


def _lookup(request, assignment_uuid):
    """The assignment whose HIT token the request carries (NotFound, or Forbidden from the token check)."""
    assignment = assignment_by_uuid(assignment_uuid)
    if assignment is None:
        raise NotFound(f"no assignment {assignment_uuid}")
    svc.hit_token_check(request.headers.get("X-HIT-Token"), assignment)
    return assignment


def autosave(request, assignment_uuid: str, video_id: str) -> dict:
    """The autosave's work, for the view below and config.handlers.AutosaveFastPath alike: the rate limits, the
    body, the service. Returns the answer's body; raises AvcrowdError (see `refusal`)."""
    _throttle_writes(request, {"assignment_uuid": assignment_uuid})
    try:
        body, invalid = _body(request), None
    except ValidationError as exc:  # reported after the 404/403 checks, inside the service's order
        body, invalid = None, exc
    token = request.META.get("HTTP_X_HIT_TOKEN")  # X-HIT-Token (request.headers would parse every header)
    updated_at = svc.answer_save_with_token(assignment_uuid, token, video_id, body, body_error=invalid)
    return {"saved": True, "video_id": video_id, "updated_at": updated_at.isoformat()}


@hit_endpoint("PUT", "POST")  # rate-limited by `autosave`, as hit_endpoint(write=True) does it
def answer(request, assignment_uuid, video_id):
    return JsonResponse(autosave(request, assignment_uuid, video_id))


@hit_endpoint("PUT", "POST", write=True)
def position(request, assignment_uuid):
    assignment = _lookup(request, assignment_uuid)
    body = _body(request)
    if "position" not in body:
        raise ValidationError("field 'position' is required", field="position")
    svc.assignment_set_position(assignment, body["position"])
    return JsonResponse({"saved": True, "position": assignment.position})


@hit_endpoint("POST", write=True)
def submit(request, assignment_uuid):
    assignment = _lookup(request, assignment_uuid)
    body = _body(request)
    extra = sorted(set(body) - {"work_seconds"})
    if extra:
        raise ValidationError(f"unknown field(s) {', '.join(extra)}; allowed: work_seconds", field=extra[0])
    assignment = svc.assignment_submit(assignment, work_seconds=body.get("work_seconds"))
    return JsonResponse(
        {
            "status": assignment.status,
            "handoff": assignment_handoff(assignment),
            "feedback": assignment.feedback or None,
        }
    )


urlpatterns = [
    path("<str:batch_uuid>/session", session, name="session"),
    path("assignments/<str:assignment_uuid>/answers/<str:video_id>", answer, name="answer"),
    path("assignments/<str:assignment_uuid>/position", position, name="position"),
    path("assignments/<str:assignment_uuid>/submit", submit, name="submit"),
]
