"""Reads about clips, including the URL a browser uses to play one."""

from __future__ import annotations

from django.core import signing
from django.urls import reverse

from catalog.models import Clip

MEDIA_SIGNER_SALT = "avcrowd.clip-media"
MEDIA_URL_MAX_AGE = 24 * 3600


def clip_media_token(clip) -> str:
    return signing.TimestampSigner(salt=MEDIA_SIGNER_SALT).sign(str(clip.pk))


def clip_from_media_token(token: str):
    """The clip a media token was issued for, or None when forged or expired."""
    try:
        pk = signing.TimestampSigner(salt=MEDIA_SIGNER_SALT).unsign(token, max_age=MEDIA_URL_MAX_AGE)
    except signing.BadSignature:
        return None
    return Clip.objects.filter(pk=pk).first()


def clip_media_url(clip, request=None) -> str:
    """A URL the browser can play: our range-serving endpoint with a signed, expiring token.

    The endpoint redirects to a presigned URL for S3-stored media and to the original for http(s) media.
    """
    url = reverse("frontend:clip-media", args=[clip_media_token(clip)])
    return request.build_absolute_uri(url) if request is not None else url
