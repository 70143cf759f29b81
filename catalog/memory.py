"""Handing memory a long task has freed back to the operating system, between its phases.

glibc's allocator keeps freed blocks of its heaps (one heap per thread that allocated) for reuse; the large numpy
arrays that a later phase allocates are mapped afresh instead, so the kept blocks count twice in the process's peak.
A 10x release freed ~70 MB of such blocks after the vote load (the CSV text of its queries, Python rows), which then
stayed resident under the merge's and the agreement's arrays. Elsewhere than glibc this does nothing."""

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

_trim = None


def return_freed_memory() -> None:
    """Ask the C allocator to return the free parts of its heaps (malloc_trim(0)); a no-op where there is none."""
    global _trim
    if _trim is None:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _trim = libc.malloc_trim
            _trim.argtypes, _trim.restype = [ctypes.c_size_t], ctypes.c_int
        except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim this way
            _trim = False
    if _trim:
        _trim(0)
