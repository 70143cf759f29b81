"""Progress bars for long management commands: tqdm with the rate and the time left, on a terminal only.

`progress_bar(total=..., desc=..., unit=...)` gives an object with `update(n)`, `set_description(text)`,
`reset(total)` and `close()` (also a context manager). It draws on stderr when stderr is a terminal, and is a silent
no-op otherwise (a pipe, a log file, cron, Celery), so logs stay clean. `AVCROWD_PROGRESS=0` turns bars off,
`AVCROWD_PROGRESS=1` forces them (e.g. to see them through `tee`). Services take such an object as `bar=` and call
`update` as they go; `NULL_BAR` is the default that does nothing."""

from __future__ import annotations

import os
import sys

from tqdm import tqdm

BAR_FORMAT = "{l_bar}{bar:24}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}]"


class NullBar:
    """What services use when no bar is given: every call does nothing."""

    n = 0

    def update(self, n: int = 1) -> None:
        pass

    def set_description(self, desc: str) -> None:
        pass

    def reset(self, total: int | None = None) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


NULL_BAR = NullBar()


def progress_enabled(stream=None) -> bool:
    forced = os.environ.get("AVCROWD_PROGRESS", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    stream = stream if stream is not None else sys.stderr
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def progress_bar(*, total: int | None = None, desc: str = "", unit: str = "it", stream=None):
    """A tqdm bar on `stream` (default stderr) when progress is enabled for it, else NULL_BAR."""
    stream = stream if stream is not None else sys.stderr
    if not progress_enabled(stream):
        return NullBar()
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        file=stream,
        dynamic_ncols=True,
        mininterval=0.2,
        smoothing=0.1,
        bar_format=BAR_FORMAT if total else None,
        unit_scale=False,
    )
