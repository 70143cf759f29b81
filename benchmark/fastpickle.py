"""Fast path for reading score lists out of VGGSounder prediction pickles.

A pickle (protocol 4/5) stores a list of C Python floats as ``]`` EMPTY_LIST, ``\\x94`` MEMOIZE, ``(`` MARK,
C x (``G`` BINFLOAT + 8 bytes big-endian), ``e`` APPENDS. Building C Python float objects per list and
converting them back to numpy costs most of the loading time of a large prediction file. This module

1. removes the optional framing (FRAME opcodes, walked frame by frame from the header; any inconsistency
   aborts the fast path),
2. finds every such float list with numpy, decodes all of them at once into one float64 matrix and replaces
   each list in the byte stream by a placeholder integer (``J`` BININT + ``\\x94`` MEMOIZE, so memo
   numbering is unchanged),
3. lets the caller unpickle the much smaller stream with the *same restricted unpickler* (no security
   difference: only the payload of float lists was replaced) and substitute the rows.

The caller must check that every placeholder was found exactly once where a score list belongs
(:func:`substitute_rows`); if anything does not add up it reads the original bytes the slow way.
"""

from __future__ import annotations

import re
import struct

import numpy as np

from .predictions import RowRef

PROTO, FRAME, EMPTY_LIST, MEMOIZE, MARK, BINFLOAT, APPENDS, BININT = 0x80, 0x95, 0x5D, 0x94, 0x28, 0x47, 0x65, 0x4A


_LIST_START = re.compile(rb"\]\x94\(")  # EMPTY_LIST MEMOIZE MARK


class FastPathUnavailable(Exception):
    """The bytes do not have the expected shape; use the ordinary reader."""


PLACEHOLDER_BASE = -(2**31)  # placeholder i is the int PLACEHOLDER_BASE + i (not a plausible score list)


def _unframe(data: bytes) -> bytes:
    """The pickle without its optional framing (FRAME opcodes), walked frame by frame from the start; any
    inconsistency raises :class:`FastPathUnavailable`. Frames split the stream at arbitrary opcodes, so a
    float list may straddle two frames; without the framing every list is contiguous."""
    if len(data) < 2 or data[0] != PROTO or data[1] not in (4, 5):
        raise FastPathUnavailable("not a protocol 4/5 pickle")
    view = memoryview(data)
    pos, n, parts = 2, len(data), [view[:2]]
    if pos < n and data[pos] != FRAME:
        return data  # not framed
    while pos < n:
        if data[pos] != FRAME or pos + 9 > n:
            raise FastPathUnavailable("unexpected framing")
        length = int.from_bytes(view[pos + 1 : pos + 9], "little")
        end = pos + 9 + length
        if end > n:
            raise FastPathUnavailable("frame runs past the end")
        parts.append(view[pos + 9 : end])
        pos = end
    return b"".join(parts)


def read_unframed(path) -> bytes | bytearray:
    """The bytes of the pickle file ``path`` with its framing removed while reading (each frame's payload is
    read straight into one buffer: no second copy of the file as :func:`_unframe` makes). An unframed
    pickle is an equally valid pickle. A file that is not a framed protocol 4/5 pickle, or whose framing
    does not add up, comes back exactly as stored."""
    import os

    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        head = fh.read(3)
        if len(head) < 3 or head[0] != PROTO or head[1] not in (4, 5) or head[2] != FRAME:
            return head + fh.read()
        buf = bytearray(size)
        view = memoryview(buf)
        buf[:2] = head[:2]
        filled, header = 2, head[2:] + fh.read(8)
        while True:
            if len(header) != 9 or header[0] != FRAME:
                break
            length = int.from_bytes(header[1:], "little")
            if filled + length > size or fh.readinto(view[filled : filled + length]) != length:
                break
            filled += length
            header = fh.read(9)
            if not header:  # clean end of the last frame
                view.release()
                del buf[filled:]
                return buf
        view.release()
        fh.seek(0)
        return fh.read()


def extract_float_lists(data: bytes, width: int, *, min_lists: int = 64):
    """-> (small stream, float64 matrix [m, width]) with each float list of length ``width`` replaced by
    BININT ``PLACEHOLDER_BASE + i``. Raises :class:`FastPathUnavailable` when there is nothing to gain."""
    if width <= 0 or width > 100_000:
        raise FastPathUnavailable("width")
    raw = _unframe(data)
    b = np.frombuffer(raw, dtype=np.uint8)
    span = 3 + 9 * width + 1  # "]\x94(" + records + "e"
    if b.size < span:
        raise FastPathUnavailable("too small")
    n_starts = b.size - span + 1
    cand = np.fromiter((m.start() for m in _LIST_START.finditer(raw, 0, n_starts + 2)), dtype=np.int64)
    cand = cand[cand < n_starts]
    if cand.size < min_lists:
        raise FastPathUnavailable("few candidate lists")
    row_len = 9 * width + 1
    good = np.zeros(cand.size, dtype=bool)
    decoded = np.empty((cand.size, width), dtype=np.float64)
    filled = 0  # rows of ``decoded`` written: the good candidates' values, in order (no compaction copy later)
    view = memoryview(raw)
    chunk = 2048
    for lo in range(0, cand.size, chunk):
        c = cand[lo : lo + chunk].tolist()
        # each candidate's records and the APPENDS byte, packed into rows of row_len bytes
        packed = b"".join([view[s + 3 : s + 3 + row_len] for s in c])
        k = len(c)
        opcodes = np.ndarray((k, width), dtype=np.uint8, buffer=packed, strides=(row_len, 9))
        closing = np.ndarray((k,), dtype=np.uint8, buffer=packed, offset=row_len - 1, strides=(row_len,))
        ok = (opcodes == BINFLOAT).all(axis=1) & (closing == APPENDS)
        good[lo : lo + k] = ok
        # the 8 payload bytes after each opcode are a big-endian double: read them in place, cast once
        payload = np.ndarray((k, width), dtype=">f8", buffer=packed, offset=1, strides=(row_len, 9))
        n_ok = int(ok.sum())
        decoded[filled : filled + n_ok] = payload if n_ok == k else payload[ok]
        filled += n_ok
    starts = cand[good]
    if starts.size < min_lists:
        raise FastPathUnavailable("few float lists")
    if np.any(np.diff(starts) < span):
        raise FastPathUnavailable("overlapping matches")
    values = decoded[:filled]
    # rebuild the stream with each float list replaced by its placeholder
    pack = struct.Struct("<Bi").pack
    view = memoryview(raw)
    parts, prev = [], 0
    for i, st in enumerate(starts.tolist()):
        parts.append(view[prev:st])
        parts.append(pack(BININT, PLACEHOLDER_BASE + i) + b"\x94")
        prev = st + span
    parts.append(view[prev:])
    return b"".join(parts), values


def substitute_rows(data, values: np.ndarray):
    """Replace placeholder ints at ``data[vid]["logits"][inp]`` by rows of ``values``; every row must be used
    exactly once and nothing else may be an int there. Raises :class:`FastPathUnavailable` otherwise."""
    if not isinstance(data, dict):
        raise FastPathUnavailable("not a dict")
    used = np.zeros(values.shape[0], dtype=bool)
    for entry in data.values():
        logits = entry.get("logits") if isinstance(entry, dict) else None
        if not isinstance(logits, dict):
            continue
        for inp, row in list(logits.items()):
            if type(row) is int:
                i = row - PLACEHOLDER_BASE
                if not 0 <= i < values.shape[0] or used[i]:
                    raise FastPathUnavailable("placeholder misuse")
                used[i] = True
                logits[inp] = RowRef(values, i)
    if not used.all():
        raise FastPathUnavailable("placeholder outside of logits")
    return data
