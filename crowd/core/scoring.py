"""Catch-trial scoring and the accept/reject/block policy: pure functions over plain data (no Django).

Atoms are (video_id, class, "audible") and (video_id, class, "visible"). A gold label with modality "A" gives
the audible atom, "V" the visible atom, "AV" both, "-" none; a worker's ticks give atoms the same way. TP, FP
and FN are pooled over all catch clips of one assignment; only the catch clips (the keys of `gold`) count, and
a catch clip the worker left without ticks still counts (its gold atoms are false negatives).
"""
from __future__ import annotations

from dataclasses import dataclass

MODALITY_ATOMS = {"A": ("audible",), "V": ("visible",), "AV": ("audible", "visible"), "-": ()}


def gold_atoms(gold: dict[str, dict[str, str]]) -> set[tuple[str, str, str]]:
    atoms = set()
    for vid, labels in gold.items():
        for cls, modality in labels.items():
            if modality not in MODALITY_ATOMS:
                raise ValueError(f"gold label {vid}/{cls}: modality {modality!r}; allowed: A, V, AV, -")
            atoms.update((vid, cls, kind) for kind in MODALITY_ATOMS[modality])
    return atoms


def label_ticks(labels: list[dict]) -> dict[str, tuple[bool, bool]]:
    """Stored labels [{"name", "audible", "visible"}] -> {class: (audible, visible)}, as `answer_atoms` reads."""
    return {lab["name"]: (bool(lab.get("audible")), bool(lab.get("visible"))) for lab in labels}


def answer_atoms(answers: dict[str, dict[str, tuple[bool, bool]]], clips=None) -> set[tuple[str, str, str]]:
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


def catch_scores(gold: dict[str, dict[str, str]],
                 answers: dict[str, dict[str, tuple[bool, bool]]]) -> tuple[float, float, float, int, int, int]:
    """(f1, precision, recall, tp, fp, fn) of the worker's ticks on the catch clips against the gold labels.

    precision = TP/(TP+FP), recall = TP/(TP+FN), F1 = 2TP/(2TP+FP+FN); each is 0 when its denominator is 0.
    Answers for clips that are not catch clips (not keys of `gold`) are ignored.
    """
    g = gold_atoms(gold)
    a = answer_atoms(answers, clips=set(gold))
    tp = len(g & a)
    fp = len(a - g)
    fn = len(g - a)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else 0.0
    return f1, precision, recall, tp, fp, fn


@dataclass(frozen=True)
class Decision:
    status: str          # "approved" | "rejected" | "submitted" (waiting for the review window)
    reason: str
    feedback: str


def decide(f1: float | None, *, reject_below: float, review_window_hours: int = 0) -> Decision:
    """The dataset policy for one submitted assignment with catch-trial F1 `f1` (None: no catch trial)."""
    if f1 is not None and f1 < reject_below:
        return Decision(
            "rejected",
            f"catch-trial F1 {f1:.3f} is below the dataset's reject_below {reject_below:.3f}",
            f"Thank you for your work. Some clips in this task are quality-control clips with known labels; "
            f"your answers on them matched those labels with an F1 score of {f1:.0%}, below the required "
            f"{reject_below:.0%}. Please watch every clip with sound and tick every class you can hear "
            f"(Audible) or see (Visible).")
    reason = ("no catch trial could be scored" if f1 is None
              else f"catch-trial F1 {f1:.3f} >= reject_below {reject_below:.3f}")
    if review_window_hours > 0:
        return Decision("submitted", reason + f"; approval after the {review_window_hours} h review window", "")
    return Decision("approved", reason, "")


def should_block(mean_f1: float | None, n_scored: int, *, block_floor: float, block_after: int) -> bool:
    """A worker whose mean catch-trial F1 is below the floor after `block_after` scored assignments."""
    return mean_f1 is not None and n_scored >= max(block_after, 1) and mean_f1 < block_floor
