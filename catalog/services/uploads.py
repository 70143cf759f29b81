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

from django.conf import settings

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
# The request saves the files under UPLOAD_STAGING_DIR/<random folder>/ and hands the folder's name (never a path)
# to the task; the task reads them there and removes the folder when its Operation has ended.

STAGED_RE = re.compile(r"^[0-9a-f]{32}$")


def staging_root() -> Path:
    return Path(settings.UPLOAD_STAGING_DIR)


def uploads_stage(uploads) -> str:
    """Save `uploads` (Django UploadedFiles) under a new staging folder, each with its own (made safe) base name;
    returns the folder's name, the token a task is given. Two uploads of the same name are refused."""
    token = uuid.uuid4().hex
    folder = staging_root() / token
    folder.mkdir(parents=True, exist_ok=False)
    names = []
    try:
        for upload in uploads:
            name = staged_name(upload)
            if name in names:
                raise ValidationError(f"two uploaded files are named {name}; each file needs its own name")
            with open(folder / name, "wb") as out:
                for chunk in upload.chunks():
                    out.write(chunk)
            names.append(name)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return token


def staged_name(upload) -> str:
    """The name an upload is staged (and named in messages) under."""
    return SAFE_NAME.sub("_", Path(upload.name or "upload").name) or "upload"


@contextlib.contextmanager
def staged_folder(token: str):
    """Yield the staging folder of `token`; an AvcrowdError raised inside names the files by their own names,
    never the server path. A folder gone (removed after an earlier run) is refused with what to do."""
    if not STAGED_RE.match(token or ""):
        raise ValidationError("unknown upload")
    folder = staging_root() / token
    if not folder.is_dir():
        raise ValidationError(
            "the uploaded file(s) are no longer on the server (an import removes them when it ends); upload them again"
        )
    try:
        yield folder
    except AvcrowdError as exc:
        exc.message = _hide_folder(exc.message, folder)
        exc.args = (exc.message,)
        if isinstance(exc.details, (list, tuple)):
            exc.details = [_hide_folder(str(d), folder) for d in exc.details]
        raise


def _hide_folder(text: str, folder: Path) -> str:
    return text.replace(str(folder) + os.sep, "").replace(str(folder), "the upload")


def staged_hide(text: str, token: str) -> str:
    """`text` without the server path of `token`'s staging folder (files named by their own names)."""
    return _hide_folder(text, staging_root() / token) if STAGED_RE.match(token or "") else text


def staged_discard(token: str) -> None:
    """Remove the staging folder of `token` (nothing when it is gone already)."""
    if STAGED_RE.match(token or ""):
        shutil.rmtree(staging_root() / token, ignore_errors=True)
