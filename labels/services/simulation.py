"""The truth a simulated crowd answers from, when it is a release (crowd.simulator reads CSV files and the
clips' original labels itself)."""

from __future__ import annotations

import os

from catalog.core.vocabulary import META_LABELS
from crowd.simulator import truth_load
from labels.selectors.releases import release_find
from labels.services.diff import release_content


def simulation_truth(source: str, class_names, dataset=None) -> tuple[dict, dict]:
    """(labels, meta) by video id from a release name (or DATASET/NAME), a VGGSounder-layout CSV path, or
    "original" (each clip's original labels, audible)."""
    if source == "original" or os.path.exists(source):
        return truth_load(source, class_names, dataset)
    flags, labels = release_content(release_find(source))
    return labels, {vid: dict(zip(META_LABELS, f)) for vid, f in flags.items()}
