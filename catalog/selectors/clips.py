"""Reads about clips, including the URL a browser uses to play one."""

from __future__ import annotations

import time

from django.core import signing
from django.urls import reverse

from catalog.models import Clip

MEDIA_SIGNER_SALT = "avcrowd.clip-media"
MEDIA_URL_MAX_AGE = 24 * 3600


def clip_media_token(clip, valid_seconds: int | None = None) -> str:
    """A signed token for the clip's media: valid MEDIA_URL_MAX_AGE (24 h) from now, or `valid_seconds` when a
    URL must outlive that (a HIT that embeds it lives for days, then is reviewed)."""
    signer = signing.TimestampSigner(salt=MEDIA_SIGNER_SALT)
    if valid_seconds is None:
        return signer.sign(str(clip.pk))
    return signer.sign(f"{clip.pk}.{int(time.time()) + int(valid_seconds)}")


def clip_from_media_token(token: str):
    """The clip a media token was issued for, or None when forged or expired."""
    signer = signing.TimestampSigner(salt=MEDIA_SIGNER_SALT)
    try:
        value = signer.unsign(token)
        pk, _, expires = value.partition(".")
        if expires:
            if not expires.isdigit() or int(expires) < time.time():
                return None
        else:
            signer.unsign(token, max_age=MEDIA_URL_MAX_AGE)
    except signing.BadSignature:
        return None
    if not pk.isdigit():
        return None
    return Clip.objects.filter(pk=pk).first()


def clip_media_url(clip, request=None, *, valid_seconds: int | None = None) -> str:
    """A URL the browser can play: our range-serving endpoint with a signed, expiring token (24 h, or
    `valid_seconds`).

    The endpoint redirects to a presigned URL for S3-stored media and to the original for http(s) media.
    """
    url = reverse("frontend:clip-media", args=[clip_media_token(clip, valid_seconds)])
    return request.build_absolute_uri(url) if request is not None else url
