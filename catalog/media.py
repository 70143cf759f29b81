"""Serving clip media to browsers: HTTP range requests for local files, redirects for S3 and remote URLs."""

from __future__ import annotations

import mimetypes
import os
import re
from pathlib import Path

from django.http import FileResponse, Http404, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.views.decorators.http import require_http_methods

from catalog.access import public_signed_link
from catalog.selectors.clips import clip_from_media_token
from catalog.services.clips import import_roots, local_path_check
from catalog.storage import parse_s3_url, presigned_get_url

RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
CHUNK = 64 * 1024


def _iter_range(fh, start: int, length: int):
    fh.seek(start)
    remaining = length
    try:
        while remaining > 0:
            data = fh.read(min(CHUNK, remaining))
            if not data:
                break
            remaining -= len(data)
            yield data
    finally:
        fh.close()


def _not_satisfiable(fh, size: int) -> HttpResponse:
    fh.close()
    response = HttpResponse(status=416)
    response["Content-Range"] = f"bytes */{size}"
    return response


def ranged_file_response(request, fh, size: int, content_type: str):
    """A 200 or 206 response for an open binary file, honouring a single `Range: bytes=a-b` header."""
    header = request.headers.get("Range", "").strip()
    match = RANGE_RE.match(header) if header else None
    if header and (not match or match.groups() == ("", "")):
        return _not_satisfiable(fh, size)
    if match:
        first, last = match.groups()
        if first == "":  # suffix range: the last N bytes
            start, end = max(size - int(last), 0), size - 1
        else:
            start = int(first)
            end = min(int(last), size - 1) if last else size - 1
        if start >= size or start > end:
            return _not_satisfiable(fh, size)
        response = StreamingHttpResponse(_iter_range(fh, start, end - start + 1), status=206, content_type=content_type)
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
        response["Content-Length"] = str(end - start + 1)
    else:
        response = FileResponse(fh, content_type=content_type)
        response["Content-Length"] = str(size)
    response["Accept-Ranges"] = "bytes"
    response["Cache-Control"] = "private, max-age=3600"
    return response


@public_signed_link
@require_http_methods(["GET", "HEAD"])
def clip_media(request, token: str):
    clip = clip_from_media_token(token)
    if clip is None:
        raise Http404("no such clip")
    if clip.media:
        storage = clip.media.storage
        try:
            path = storage.path(clip.media.name)
        except NotImplementedError:  # remote storage (S3): a URL presigned for the public endpoint
            return HttpResponseRedirect(storage.url(clip.media.name))
        source = Path(path)
    elif clip.media_url.startswith(("http://", "https://")):
        return HttpResponseRedirect(clip.media_url)
    elif clip.media_url.startswith("s3://"):
        return HttpResponseRedirect(presigned_get_url(*parse_s3_url(clip.media_url)))
    elif clip.media_url:
        source = Path(clip.media_url)
        if local_path_check(clip.media_url, import_roots()):  # a path stored before the rule, or roots changed
            raise Http404("media file not available")
    else:
        raise Http404("this clip has no media")
    if not source.is_file():
        raise Http404("media file missing")
    content_type = mimetypes.guess_type(source.name)[0] or "application/octet-stream"
    return ranged_file_response(request, open(source, "rb"), os.path.getsize(source), content_type)
