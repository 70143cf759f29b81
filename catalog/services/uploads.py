"""Files uploaded through a page or the API, handed to services that read a path: saved under a temporary
directory with their own base name, so that an error names the file as the person knows it, never a server path."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path

from django.core.files.storage import default_storage

from catalog.errors import AvcrowdError, ValidationError

SAFE_NAME = re.compile(r"[^A-Za-z0-9._+-]")


def _hide(text: str, tmp: str, target: Path, name: str) -> str:
    return text.replace(str(target), name).replace(tmp + os.sep, "").replace(tmp, "")


@contextlib.contextmanager
def upload_as_file(upload, *, field: str = "file"):
    """Yield the path of a saved copy of `upload` (a Django UploadedFile); deleted afterwards. An AvcrowdError
    raised inside names the uploaded file instead of the temporary path."""
    if upload is None:
        raise ValidationError(f"choose a file to upload (field {field!r})", field=field)
    name = SAFE_NAME.sub("_", Path(upload.name or "upload").name) or "upload"
    with tempfile.TemporaryDirectory(prefix="avcrowd-upload-") as tmp:
        target = Path(tmp) / name
        with open(target, "wb") as out:
            for chunk in upload.chunks():
                out.write(chunk)
        try:
            yield target
        except AvcrowdError as exc:
            exc.message = _hide(exc.message, tmp, target, name)
            exc.args = (exc.message,)
            if isinstance(exc.details, (list, tuple)):
                exc.details = [_hide(str(d), tmp, target, name) for d in exc.details]
            raise


# --- uploads kept for work done in the background -------------------------------------------------------------------
# The request saves the files in the media storage (S3 when configured, so that a worker on another machine reads
# them; else MEDIA_ROOT) under uploads-staged/<random token>/ and hands the token (never a path) to the task; the
# task copies them into a local temporary folder to read them, and removes them when its Operation has ended.

STAGED_RE = re.compile(r"^[0-9a-f]{32}$")
STAGING_PREFIX = "uploads-staged"


def _staged_key(token: str, name: str = "") -> str:
    return f"{STAGING_PREFIX}/{token}/{name}" if name else f"{STAGING_PREFIX}/{token}"


def uploads_stage(uploads) -> str:
    """Save `uploads` (Django UploadedFiles) in the media storage under a new token, each with its own (made safe)
    base name; returns the token a task is given. Two uploads of the same name are refused."""
    token = uuid.uuid4().hex
    names: list[str] = []
    try:
        for upload in uploads:
            name = staged_name(upload)
            if name in names:
                raise ValidationError(f"two uploaded files are named {name}; each file needs its own name")
            upload.seek(0)
            saved = default_storage.save(_staged_key(token, name), upload)
            if saved != _staged_key(token, name):  # the storage renamed it: not ours to read back
                default_storage.delete(saved)
                raise ValidationError(f"{name}: could not be saved under its own name; rename the file")
            names.append(name)
    except BaseException:
        staged_discard(token)
        raise
    return token


def staged_name(upload) -> str:
    """The name an upload is staged (and named in messages) under."""
    return SAFE_NAME.sub("_", Path(upload.name or "upload").name) or "upload"


def _staged_names(token: str) -> list[str]:
    try:
        return sorted(default_storage.listdir(_staged_key(token))[1])
    except (FileNotFoundError, NotADirectoryError):
        return []


@contextlib.contextmanager
def staged_folder(token: str):
    """Yield a local folder holding the files staged under `token` (copied from the media storage; removed
    afterwards). An AvcrowdError raised inside names the files by their own names, never a server path. Files gone
    (removed after an earlier run) are refused with what to do."""
    if not STAGED_RE.match(token or ""):
        raise ValidationError("unknown upload")
    names = _staged_names(token)
    if not names:
        raise ValidationError(
            "the uploaded file(s) are no longer on the server (an import removes them when it ends); upload them again"
        )
    with tempfile.TemporaryDirectory(prefix=f"avcrowd-upload-{token}-") as tmp:
        folder = Path(tmp)
        for name in names:
            with default_storage.open(_staged_key(token, name), "rb") as src, open(folder / name, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
        try:
            yield folder
        except AvcrowdError as exc:
            exc.message = staged_hide(exc.message, token)
            exc.args = (exc.message,)
            if isinstance(exc.details, (list, tuple)):
                exc.details = [staged_hide(str(d), token) for d in exc.details]
            raise


def staged_hide(text: str, token: str) -> str:
    """`text` without the server path of `token`'s local folder (files named by their own names)."""
    if not STAGED_RE.match(token or ""):
        return text
    folder = rf"[^\s'\"]*avcrowd-upload-{token}-[^/\\\s'\"]+"
    return re.sub(folder + r"[/\\]?", "", text)


def staged_discard(token: str) -> None:
    """Remove the files staged under `token` (nothing when they are gone already)."""
    if not STAGED_RE.match(token or ""):
        return
    for name in _staged_names(token):
        default_storage.delete(_staged_key(token, name))
    with contextlib.suppress(NotImplementedError, OSError):
        os.rmdir(default_storage.path(_staged_key(token)))  # a local storage's empty folder
