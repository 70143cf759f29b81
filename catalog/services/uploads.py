"""Files uploaded through a page or the API, handed to services that read a path: saved under a temporary
directory with their own base name, so that an error names the file as the person knows it, never a server path."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path

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
