"""Reads about a dataset's batches: whether its gold can give every batch its catch trials, and the batches built
without any (crowd.services.batches refuses, warns and rebuilds with these)."""

from __future__ import annotations

from catalog.models import Clip, Dataset, GoldLabel
from crowd.models import Batch


def batches_gold_check(dataset: Dataset) -> dict:
    """How many scorable gold clips the dataset has for its `gold_per_batch`, and what that means for new batches:
    {"n_gold", "per_batch", "refusal" (no gold at all: batches could never be published), "warning" (too few)}."""
    n_gold = (
        Clip.objects.filter(dataset=dataset, is_gold=True)
        .filter(pk__in=GoldLabel.objects.exclude(modality="-").values("clip_id"))
        .count()
    )
    per_batch = dataset.gold_per_batch
    out = {"n_gold": n_gold, "per_batch": per_batch, "refusal": None, "warning": None}
    if per_batch and n_gold == 0:
        out["refusal"] = (
            f"dataset {dataset.name} has no gold clips with gold labels, but asks for {per_batch} catch trial(s) per "
            f"batch: batches built now would have no catch trials and publishing refuses them. Import gold labels "
            f"first (import_gold, or Import gold on the dataset's pipeline page), or set gold_per_batch to 0"
        )
    elif per_batch and n_gold < max(per_batch * 5, 10):
        out["warning"] = (
            f"dataset {dataset.name} has only {n_gold} gold clip(s) for {per_batch} catch trial(s) per batch: "
            f"the same gold clips come back in every batch and workers may learn them (aim for at least "
            f"{max(per_batch * 5, 10)})"
        )
    return out


def batches_without_catch_trials(dataset: Dataset):
    """Batches of the dataset without any catch trial (built before the gold existed)."""
    return Batch.objects.filter(dataset=dataset).exclude(items__is_gold=True).distinct()
