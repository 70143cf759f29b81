"""How metric reports are shown to people: releases and model runs by name ("lab/v1", "cav-mae on lab") instead of
ids, uploaded files by their own name, error texts without server paths, and the per-class table read from the
`per_class` key of report.json ({model: {modality: {class: {"f1", "ap", "support"}}}})."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from labels.models import Release
from proposals.models import ModelRun

# an absolute path (or the storage path of an upload): shown as its last part only
PATH_RE = re.compile(r"(?:(?<=\s)|(?<=^)|(?<=[\"'(=:]))(?:/[^\s/\"'(),:;]+)+/([^\s/\"'(),:;]+)")
MODALITY_ORDER = ("a", "v", "av")
FEW = 5  # fewer clips of a class than this: its F1 / AP are shown but marked as resting on too little data


def hide_paths(text: str) -> str:
    """The text with every absolute path replaced by its file name."""
    return PATH_RE.sub(lambda m: m.group(1), text or "")


class Names:
    """Looks up the releases and runs that reports name, once per page."""

    def __init__(self, reports):
        labels, runs = set(), set()
        for r in reports:
            p = r.params or {}
            if str(p.get("labels", "")).isdigit():
                labels.add(int(p["labels"]))
            for spec in p.get("predictions", []):
                key = spec[4:] if spec.startswith("run:") else spec
                if key.isdigit():
                    runs.add(int(key))
        self.releases = {
            r.pk: f"{r.dataset.name}/{r.name}" for r in Release.objects.filter(pk__in=labels).select_related("dataset")
        }
        self.runs = {
            r.pk: f"{r.model_name} on {r.dataset.name}"
            for r in ModelRun.objects.filter(pk__in=runs).select_related("checkpoint", "dataset")
        }

    def labels(self, spec) -> str:
        spec = str(spec or "")
        if spec.isdigit():
            return self.releases.get(int(spec), f"release {spec} (deleted)")
        return _file_or_name(spec)

    def model(self, spec) -> str:
        key = spec[4:] if spec.startswith("run:") else spec
        if key.isdigit():
            return self.runs.get(int(key), f"run {key} (deleted)")
        return _file_or_name(spec)


def _file_or_name(spec: str) -> str:
    if spec.startswith("upload:"):
        return f"{PurePosixPath(spec[7:]).name} (uploaded)"
    if "/" in spec and (spec.startswith(("/", ".")) or spec.count("/") > 1):
        return PurePosixPath(spec).name  # a file the command was given: its name, not where it is
    return spec  # "dataset/release" or a model name


def _pct(value):
    return None if value is None else round(100 * float(value), 1)


def per_class_tables(per_class: dict) -> list[dict]:
    """One table per model: a row per class with its support and, per modality, F1 and AP (×100; None: not
    defined, e.g. no positive clip). Rows by descending support, then name."""
    tables = []
    for model, by_mod in (per_class or {}).items():
        mods = [m for m in MODALITY_ORDER if m in by_mod] + sorted(m for m in by_mod if m not in MODALITY_ORDER)
        classes = sorted({c for m in mods for c in by_mod[m]})
        rows = []
        for cls in classes:
            support = max(int((by_mod[m].get(cls) or {}).get("support") or 0) for m in mods)
            cells = []
            for m in mods:
                entry = by_mod[m].get(cls) or {}
                cells.append({"mod": m, "f1": _pct(entry.get("f1")), "ap": _pct(entry.get("ap"))})
            rows.append({"cls": cls, "support": support, "few": support < FEW, "cells": cells})
        absent = sum(1 for r in rows if r["support"] == 0)
        rows = [r for r in rows if r["support"] > 0]  # classes without a clip in the label set: counted, not listed
        rows.sort(key=lambda r: (-r["support"], r["cls"]))
        n_few = sum(r["few"] for r in rows)
        tables.append(
            {"model": model, "modalities": mods, "rows": rows, "n_few": n_few, "few_limit": FEW, "n_absent": absent}
        )
    return tables
