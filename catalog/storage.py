"""Media in an S3-compatible store (AWS S3, MinIO): one way to reach it and one way to hand browsers a link.

The servers reach the store at ``AWS_S3_ENDPOINT_URL`` (e.g. ``http://minio:9000`` inside docker compose) with the
media store's own keys (``AWS_S3_ACCESS_KEY_ID`` / ``AWS_S3_SECRET_ACCESS_KEY``; unset: the standard AWS credential
chain). Browsers cannot reach that address, so links given to them are presigned for
``AWS_S3_PUBLIC_ENDPOINT_URL`` (e.g. ``https://media.avcrowd.example.org``, a proxy in front of MinIO that keeps
the Host header); unset, for the endpoint the servers use. A SigV4 signature covers the host, so the URL is signed
for the public host itself, not rewritten afterwards. Uploaded clips (``MediaStorage``) and ``s3://bucket/key``
clip URLs go through the same clients.
"""

from __future__ import annotations

import functools

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from django.conf import settings
from storages.backends.s3 import S3Storage
from storages.utils import clean_name


def _store_settings(public: bool) -> tuple:
    endpoint = settings.AWS_S3_ENDPOINT_URL or None
    if public and settings.AWS_S3_PUBLIC_ENDPOINT_URL:
        endpoint = settings.AWS_S3_PUBLIC_ENDPOINT_URL
    return (
        endpoint,
        settings.AWS_S3_REGION_NAME or None,
        settings.AWS_S3_ACCESS_KEY_ID or None,
        settings.AWS_S3_SECRET_ACCESS_KEY or None,
        # path-style (https://host/bucket/key) for a custom endpoint: MinIO and proxies need no wildcard DNS
        "path" if endpoint else "auto",
    )


@functools.lru_cache(maxsize=8)
def _client(endpoint, region, key_id, secret, addressing):
    session = boto3.session.Session(aws_access_key_id=key_id, aws_secret_access_key=secret, region_name=region)
    config = Config(
        signature_version="s3v4",
        s3={"addressing_style": addressing},
        connect_timeout=5,
        read_timeout=60,
        retries={"max_attempts": 3, "mode": "standard"},
    )
    return session.client("s3", endpoint_url=endpoint, config=config)


def s3_client(*, public: bool = False):
    """The boto3 client of the media store; ``public=True``: the one whose presigned URLs browsers can open
    (it is only used to sign, never to connect)."""
    return _client(*_store_settings(public))


def presigned_get_url(bucket: str, key: str, expires: int | None = None) -> str:
    """A GET URL of an object that a browser can open for ``expires`` seconds (default AWS_QUERYSTRING_EXPIRE)."""
    return s3_client(public=True).generate_presigned_url(
        "get_object",
        Params={"Bucket": bucket, "Key": key},
        ExpiresIn=int(expires or settings.AWS_QUERYSTRING_EXPIRE),
    )


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key)."""
    bucket, _, key = url[len("s3://") :].partition("/")
    return bucket, key


class MediaStorage(S3Storage):
    """django-storages' S3 storage whose URLs are presigned for the public endpoint (see the module doc)."""

    def url(self, name, parameters=None, expire=None, http_method=None):
        if parameters or http_method:  # not used by avcrowd: keep the library's behaviour
            return super().url(name, parameters=parameters, expire=expire, http_method=http_method)
        return presigned_get_url(self.bucket_name, self._normalize_name(clean_name(name)), expire)


def bucket_ensure(bucket: str) -> bool:
    """Create the media bucket if it does not exist (docker compose's init step, the smoke test). Returns True
    when it was created. Other errors (wrong keys, unreachable endpoint) are raised as they are."""
    client = s3_client()
    try:
        client.head_bucket(Bucket=bucket)
        return False
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise
    region = settings.AWS_S3_REGION_NAME or None
    if region and region != "us-east-1":
        client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    else:
        client.create_bucket(Bucket=bucket)
    return True
