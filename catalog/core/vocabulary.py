"""The label vocabulary, one home for every app: meta labels and their order, modality codes, label atoms, the
VGGSounder label-set layout, and THE catch-trial F1 (live scoring, imported results and merge ranking all call
`catch_scores`). Pure Python, no Django.

Atoms are (video_id, class, "audible") and (video_id, class, "visible"). A gold label with modality "A" gives the
audible atom, "V" the visible atom, "AV" both, "-" none; a worker's ticks give atoms the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# Clip-level meta labels, in the order of every array, form and export that lists them.
META_LABELS = ("background_music", "voice_over", "static_image")

# Modalities of a label that is present, and of a gold label ("-": the class is not in the clip).
MODALITIES = ("A", "V", "AV")
GOLD_MODALITIES = MODALITIES + ("-",)
MODALITY_FLAGS = {"A": (True, False), "V": (False, True), "AV": (True, True)}
MODALITY_ATOMS = {"A": ("audible",), "V": ("visible",), "AV": ("audible", "visible"), "-": ()}

# The VGGSounder label-set CSV: one row per (clip, class); booleans written True/False.
LABEL_CSV_COLUMNS = ["video_id", "label", "modality", "background_music", "static_image", "voice_over"]
BOOL_TEXT = {"True": True, "False": False}

Atom = tuple[str, str, str]
Ticks = Mapping[str, tuple[bool, bool]]


def modality_from_flags(audible: bool, visible: bool) -> str | None:
    """ "A", "V", "AV", or None when neither flag is set."""
    if audible and visible:
        return "AV"
    if audible:
        return "A"
    if visible:
        return "V"
    return None


def merge_modalities(*modalities: str) -> str | None:
    """The union of present modalities ("A" + "V" -> "AV")."""
    audible = any(MODALITY_FLAGS[m][0] for m in modalities)
    visible = any(MODALITY_FLAGS[m][1] for m in modalities)
    return modality_from_flags(audible, visible)


def label_ticks(labels: Iterable[Mapping]) -> dict[str, tuple[bool, bool]]:
    """Stored labels [{"name", "audible", "visible"}] -> {class: (audible, visible)}."""
    return {lab["name"]: (bool(lab.get("audible")), bool(lab.get("visible"))) for lab in labels}


def ticked_modalities(labels: Iterable[Mapping] | None, media_failed: bool = False) -> dict[str, str]:
    """One answer's ticked classes -> "A" / "V" / "AV" (unticked classes left out; {} for a clip reported as not
    playing, which counts as nothing ticked)."""
    if media_failed:
        return {}
    out = {}
    for name, (audible, visible) in label_ticks(labels or ()).items():
        modality = modality_from_flags(audible, visible)
        if modality:
            out[name] = modality
    return out


def gold_atoms(gold: Mapping[str, Mapping[str, str]]) -> set[Atom]:
    atoms = set()
    for vid, labels in gold.items():
        for cls, modality in labels.items():
            if modality not in MODALITY_ATOMS:
                raise ValueError(f"gold label {vid}/{cls}: modality {modality!r}; allowed: A, V, AV, -")
            atoms.update((vid, cls, kind) for kind in MODALITY_ATOMS[modality])
    return atoms


def answer_atoms(answers: Mapping[str, Ticks], clips=None) -> set[Atom]:
    atoms = set()
    for vid, ticks in answers.items():
        if clips is not None and vid not in clips:
            continue
        for cls, (audible, visible) in ticks.items():
            if audible:
                atoms.add((vid, cls, "audible"))
            if visible:
                atoms.add((vid, cls, "visible"))
    return atoms


def f1_from_counts(tp: float, fp: float, fn: float) -> tuple[float, float, float]:
    """(f1, precision, recall); each is 0 when its denominator is 0."""
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else 0.0
    return f1, precision, recall


def catch_answers(rows: Iterable[tuple[str, Iterable[Mapping], bool]]) -> dict[str, dict[str, tuple[bool, bool]]]:
    """An assignment's stored answers (video_id, labels, media_failed) as `catch_scores` reads them: a clip the worker
    reported as not playing counts as nothing ticked, whatever its labels hold."""
    return {vid: ({} if media_failed else label_ticks(labels or ())) for vid, labels, media_failed in rows}


def catch_scores(
    gold: Mapping[str, Mapping[str, str]], answers: Mapping[str, Ticks]
) -> tuple[float, float, float, int, int, int]:
    """(f1, precision, recall, tp, fp, fn) of one assignment's ticks on its catch clips against the gold labels.

    `gold` holds every catch clip of the assignment (video_id -> {class: modality}); TP, FP and FN are pooled over
    them. A catch clip the worker left without ticks, or reported as not playing (media_failed), still counts: its
    gold atoms are false negatives. Answers for clips that are not catch clips (not keys of `gold`) are ignored.
    precision = TP/(TP+FP), recall = TP/(TP+FN), F1 = 2TP/(2TP+FP+FN).
    """
    g = gold_atoms(gold)
    a = answer_atoms(answers, clips=set(gold))
    tp = len(g & a)
    fp = len(a - g)
    fn = len(g - a)
    f1, precision, recall = f1_from_counts(tp, fp, fn)
    return f1, precision, recall, tp, fp, fn


def catch_result(
    gold: Mapping[str, Mapping[str, str]], answers: Mapping[str, Ticks]
) -> tuple[float, float, float, int, int, int] | None:
    """`catch_scores`, or None when the catch clips hold no gold atom at all (nothing to score against: an
    assignment without catch trials, or whose catch clips are all "-")."""
    if not any(m != "-" for labels in gold.values() for m in labels.values()):
        return None
    return catch_scores(gold, answers)
