"""Pure taxonomy logic: reading the class list and relation files, and closing label sets over relations."""

from __future__ import annotations

import csv
from collections import defaultdict, deque
from pathlib import Path

from catalog.core.vocabulary import merge_modalities
from catalog.errors import ImportFailed

RELATION_KINDS = ("synonym", "superclass")


def read_classes_csv(path: str | Path) -> list[tuple[int, str, str]]:
    """Read a `index,mid,display_name` class list; indices must be 0..n-1 in order, names unique."""
    path = Path(path)
    errors: list[str] = []
    rows: list[tuple[int, str, str]] = []
    seen: dict[str, int] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"index", "display_name"} - set(reader.fieldnames or [])
        if missing:
            raise ImportFailed(
                f"{path}: missing column(s) {', '.join(sorted(missing))}; expected index,mid,display_name"
            )
        for lineno, row in enumerate(reader, start=2):
            try:
                index = int(row["index"])
            except (TypeError, ValueError):
                errors.append(f"{path}:{lineno}: field 'index' is {row['index']!r}; expected an integer")
                continue
            name = (row.get("display_name") or "").strip()
            if index != len(rows):
                errors.append(f"{path}:{lineno}: index {index} out of order; expected {len(rows)}")
            if not name:
                errors.append(f"{path}:{lineno}: field 'display_name' is empty")
            elif name in seen:
                errors.append(f"{path}:{lineno}: class {name!r} repeats line {seen[name]}")
            seen[name] = lineno
            rows.append((index, name, (row.get("mid") or "").strip()))
    if errors:
        raise ImportFailed(f"{path}: {len(errors)} problem(s) in the class list", details=errors)
    return rows


def read_relations_csv(path: str | Path, class_names: set[str]) -> list[tuple[str, str, str]]:
    """Read `kind,source,target` rows; every name must be a class, kind synonym|superclass."""
    path = Path(path)
    errors: list[str] = []
    out: list[tuple[str, str, str]] = []
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"kind", "source", "target"} - set(reader.fieldnames or [])
        if missing:
            raise ImportFailed(f"{path}: missing column(s) {', '.join(sorted(missing))}; expected kind,source,target")
        for lineno, row in enumerate(reader, start=2):
            kind = (row["kind"] or "").strip()
            source = (row["source"] or "").strip()
            target = (row["target"] or "").strip()
            if kind not in RELATION_KINDS:
                errors.append(f"{path}:{lineno}: field 'kind' is {kind!r}; allowed: {', '.join(RELATION_KINDS)}")
            for field, name in (("source", source), ("target", target)):
                if name not in class_names:
                    errors.append(f"{path}:{lineno}: field '{field}' names unknown class {name!r}")
            if source == target:
                errors.append(f"{path}:{lineno}: a class cannot relate to itself ({source!r})")
            out.append((kind, source, target))
    if errors:
        raise ImportFailed(f"{path}: {len(errors)} problem(s) in the class relations", details=errors)
    return out


def implication_graph(synonyms, superclasses) -> dict[str, set[str]]:
    """Edges a -> b meaning 'a present implies b present'. Synonyms go both ways."""
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in synonyms:
        graph[a].add(b)
        graph[b].add(a)
    for sub, sup in superclasses:
        graph[sub].add(sup)
    return graph


def closure(labels: dict[str, str], synonyms, superclasses) -> dict[str, tuple[str, list[str]]]:
    """Close a clip's label set over synonyms (symmetric) and superclasses (implied), transitively.

    labels: {class name: modality "A"|"V"|"AV"}. Returns {class: (modality, sources)}: original labels keep
    their modality and have no sources; an added class takes the union of the modalities of the original
    labels it is reached from, and lists them (sorted). An original label never changes its modality.
    For many clips, make the function once with `closer(synonyms, superclasses)`.
    """
    return closer(synonyms, superclasses)(labels)


def closer(synonyms, superclasses):
    """`closure` for one taxonomy's relations, as a function of a clip's labels: the classes reachable from each
    class are found once (breadth-first over the implication graph) and reused for every clip (a release closes
    150k clips; building the graph per clip was most of its closure time)."""
    graph = implication_graph(synonyms, superclasses)
    reach: dict[str, tuple[str, ...]] = {}

    def reachable(origin: str) -> tuple[str, ...]:
        found = reach.get(origin)
        if found is None:
            seen = {origin}
            order = []
            queue = deque([origin])
            while queue:
                node = queue.popleft()
                for nxt in graph.get(node, ()):
                    if nxt not in seen:
                        seen.add(nxt)
                        order.append(nxt)
                        queue.append(nxt)
            found = reach[origin] = tuple(order)
        return found

    def close(labels: dict[str, str]) -> dict[str, tuple[str, list[str]]]:
        reached_from: dict[str, set[str]] = defaultdict(set)
        for origin in labels:
            for nxt in reachable(origin):
                if nxt not in labels:
                    reached_from[nxt].add(origin)
        out: dict[str, tuple[str, list[str]]] = {name: (mod, []) for name, mod in labels.items()}
        for name, sources in reached_from.items():
            out[name] = (merge_modalities(*(labels[s] for s in sources)), sorted(sources))
        return out

    return close
