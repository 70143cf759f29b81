"""Parse Crab's tagged event descriptions and map them to the class list.

Accepted output shapes (case-insensitive, closing tags optional):
  <audio_event>dog barking (0-4s), car horn [5.5, 7]</audio_event>
  <visual_event>dog: from 0 to 10 seconds; a man speaking</visual_event>
  <av_event>playing piano</av_event>   (also <audio_visual_event>, <audiovisual_event>, <event>)
  <event>dog barking</event><range>0,3</range>
  <visual_event>Chainsaw,(0 1),(3 6)</visual_event> and <audio_event>Chainsaw,(0 10)</audio_event>   (Crab's AVVP)
Untagged text is read as one untagged segment. Items are separated by ';', newlines, ' and ',
and commas; comma-separated pieces are re-joined when the join is itself a class name
("bird chirping, tweeting"). Each item's time ranges are extracted, the remaining name is matched
to the nearest class by text-embedding cosine similarity (exact normalised spelling = 1.0) and kept
when the similarity reaches the threshold.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .text_embed import get_embedder, label_embeddings, normalize_name

TAG_MODALITY = {
    "audio_event": "a",
    "audio_events": "a",
    "audio": "a",
    "visual_event": "v",
    "visual_events": "v",
    "video_event": "v",
    "visual": "v",
    "av_event": "av",
    "audio_visual_event": "av",
    "audiovisual_event": "av",
    "event": "av",
    "events": "av",
}
_TAG_RE = re.compile(r"<\s*(/?)\s*([a-z_]+)\s*>", re.I)
_NUM = r"(\d+(?:\.\d+)?)"
_UNIT = r"\s*(?:s|sec|secs|second|seconds)?"
_RANGE_RES = [
    re.compile(r"<\s*range\s*>\s*" + _NUM + _UNIT + r"\s*[,\-–~]\s*" + _NUM + _UNIT + r"\s*<\s*/\s*range\s*>", re.I),
    re.compile(
        r"[\(\[\{]\s*(?:from\s+)?" + _NUM + _UNIT + r"\s*(?:-|–|~|to|,)\s*" + _NUM + _UNIT + r"\s*[\)\]\}]", re.I
    ),
    # Crab's AVVP answers: "<visual_event>Chainsaw,(0 1),(3 6)</visual_event>" (a space between the bounds)
    re.compile(r"[\(\[\{]\s*" + _NUM + _UNIT + r"\s+" + _NUM + _UNIT + r"\s*[\)\]\}]", re.I),
    re.compile(r"(?:from\s+)?" + _NUM + _UNIT + r"\s*(?:-|–|~|to)\s*" + _NUM + _UNIT + r"\b", re.I),
]
_FILLER_RE = re.compile(
    r"\b(?:from|at|during|between|seconds?|secs?|the sound of|sound of|there is|there are|"
    r"a|an|the|is|are|heard|visible|audible)\b",
    re.I,
)


@dataclass
class ParsedEvent:
    modality: str  # "a", "v", "av" or "" (untagged)
    name: str
    spans: list[tuple[float, float]] = field(default_factory=list)


@dataclass
class ClassMatch:
    modality: str
    name: str
    cls: str | None
    index: int | None
    similarity: float
    spans: list[tuple[float, float]] = field(default_factory=list)


def _segments(text: str) -> list[tuple[str, str]]:
    """Split text into (modality, content) by event tags; text outside tags is untagged ("")."""
    out: list[tuple[str, str]] = []
    pos, current = 0, ""
    for m in _TAG_RE.finditer(text):
        closing, tag = m.group(1) == "/", m.group(2).lower()
        if tag == "range" or tag not in TAG_MODALITY:
            continue
        chunk = text[pos : m.start()]
        if chunk.strip():
            out.append((current, chunk))
        current = "" if closing else TAG_MODALITY[tag]
        pos = m.end()
    rest = text[pos:]
    if rest.strip():
        out.append((current, rest))
    # a <range> directly following a closed tag belongs to the event before it
    merged: list[tuple[str, str]] = []
    for mod, chunk in out:
        if (
            mod == ""
            and merged
            and re.fullmatch(r"\s*[,;:]?\s*(<\s*range\s*>.*?<\s*/\s*range\s*>\s*)+[,;.]?\s*", chunk, re.I | re.S)
        ):
            merged[-1] = (merged[-1][0], merged[-1][1] + " " + chunk)
        else:
            merged.append((mod, chunk))
    return merged


def extract_spans(item: str) -> tuple[str, list[tuple[float, float]]]:
    spans = []
    for rx in _RANGE_RES:

        def take(m):
            a, b = float(m.group(1)), float(m.group(2))
            spans.append((min(a, b), max(a, b)))
            return " "

        item = rx.sub(take, item)
    return item, spans


def _clean(name: str) -> str:
    name = re.sub(r"<[^>]*>", " ", name)
    name = re.sub(r"\b\d+(?:\.\d+)?\s*(?:s|sec|secs|seconds?)\b", " ", name, flags=re.I)
    name = _FILLER_RE.sub(" ", name)
    name = re.sub(r"^[\s:;,.\-\d*•]+|[\s:;,.\-*•]+$", "", name)
    return re.sub(r"\s+", " ", name).strip()


def _split_commas(s: str) -> list[str]:
    """Split on commas outside brackets and outside <range>...</range>."""
    parts, buf, depth, in_range = [], [], 0, False
    low = s.lower()
    i = 0
    while i < len(s):
        ch = s[i]
        if low.startswith("<range>", i):
            in_range = True
        elif low.startswith("</range>", i):
            in_range = False
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth = max(0, depth - 1)
        if ch == "," and depth == 0 and not in_range:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
        i += 1
    parts.append("".join(buf))
    return parts


def parse_events(text: str, class_names: Sequence[str] = ()) -> list[ParsedEvent]:
    """Parse model output into events (modality, cleaned name, time spans). `class_names` lets
    comma-separated pieces that together spell a class be kept as one item."""
    known = {normalize_name(c) for c in class_names}
    events: list[ParsedEvent] = []
    for mod, chunk in _segments(text or ""):
        for piece in re.split(r";|\n|\band\b(?![^\(\[]*[\)\]])", chunk):
            parts = _split_commas(piece)
            # re-join comma pieces whose join is a class name (longest first)
            i = 0
            while i < len(parts):
                took = 1
                for j in range(len(parts), i + 1, -1):
                    cand, _ = extract_spans(",".join(parts[i:j]))
                    if normalize_name(_clean(cand)) in known:
                        took = j - i
                        break
                item = ",".join(parts[i : i + took])
                i += took
                # a bare range piece ("0-3s") after a comma belongs to the previous item
                stripped, spans = extract_spans(item)
                name = _clean(stripped)
                if not name:
                    if spans and events and events[-1].modality == mod:
                        events[-1].spans.extend(spans)
                    continue
                events.append(ParsedEvent(mod, name, spans))
    return events


class ClassMatcher:
    """Nearest-class matching of free-text event names with a similarity threshold."""

    def __init__(self, class_names: Sequence[str], backend: str = "auto", threshold: float = 0.6, cache_dir=None):
        self.class_names = list(class_names)
        self.threshold = float(threshold)
        self.embedder = get_embedder(backend)
        self.class_emb = label_embeddings(self.class_names, backend=backend, cache_dir=cache_dir)
        self._exact = {normalize_name(c): i for i, c in enumerate(self.class_names)}

    def match_names(self, names: Sequence[str]) -> list[tuple[int, float]]:
        res: list[tuple[int, float] | None] = [None] * len(names)
        todo = []
        for i, n in enumerate(names):
            k = self._exact.get(normalize_name(n))
            if k is not None:
                res[i] = (k, 1.0)
            else:
                todo.append(i)
        if todo:
            e = self.embedder.embed([names[i] for i in todo])
            sims = e @ self.class_emb.T
            for row, i in enumerate(todo):
                k = int(np.argmax(sims[row]))
                res[i] = (k, float(sims[row, k]))
        return res  # type: ignore[return-value]

    def match(self, text: str) -> list[ClassMatch]:
        events = parse_events(text, self.class_names)
        out = []
        for ev, (k, sim) in zip(events, self.match_names([e.name for e in events])):
            ok = sim >= self.threshold
            out.append(
                ClassMatch(ev.modality, ev.name, self.class_names[k] if ok else None, k if ok else None, sim, ev.spans)
            )
        return out

    def scores(self, text: str, modalities: Sequence[str] | None = None) -> np.ndarray:
        """[num_classes] float32: for each matched class the best similarity, else 0. `modalities`
        restricts to events tagged with those (untagged events always count)."""
        vec = np.zeros(len(self.class_names), dtype=np.float32)
        for m in self.match(text):
            if m.index is None:
                continue
            if modalities is not None and m.modality and m.modality not in modalities:
                continue
            vec[m.index] = max(vec[m.index], m.similarity)
        return vec
