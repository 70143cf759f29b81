"""The accept/reject/block policy for scored assignments: pure functions over plain data (no Django). The catch-
trial F1 itself is catalog.core.vocabulary.catch_scores (one definition for live scoring, imports and merging)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    status: str  # "approved" | "rejected" | "submitted" (waiting for the review window)
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
            f"(Audible) or see (Visible).",
        )
    reason = (
        "no catch trial could be scored"
        if f1 is None
        else f"catch-trial F1 {f1:.3f} >= reject_below {reject_below:.3f}"
    )
    if review_window_hours > 0:
        return Decision("submitted", reason + f"; approval after the {review_window_hours} h review window", "")
    return Decision("approved", reason, "")


def should_block(mean_f1: float | None, n_scored: int, *, block_floor: float, block_after: int) -> bool:
    """A worker whose mean catch-trial F1 is below the floor after `block_after` scored assignments."""
    return mean_f1 is not None and n_scored >= max(block_after, 1) and mean_f1 < block_floor
