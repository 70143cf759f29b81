"""Planning batches (HITs): pure, deterministic given the random generator.

A batch holds `batch_size` clips of which `gold_per_batch` are gold catch trials at random positions. Gold clips
rotate round-robin over the gold list in the order given (the caller puts the least-used first), starting at
`gold_offset`, so consecutive batches carry
different gold clips and one worker doing several batches meets many different gold clips.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class PlannedItem:
    video_id: str
    is_gold: bool


def plan_batches(
    regular: list[str],
    gold: list[str],
    *,
    batch_size: int,
    gold_per_batch: int,
    rng: random.Random,
    gold_offset: int = 0,
) -> list[list[PlannedItem]]:
    """Split `regular` clips into batches, inserting gold clips at random positions.

    Every regular clip lands in exactly one batch; a batch never holds the same clip twice. When fewer gold
    clips than `gold_per_batch` exist, every batch carries all of them. The last batch may be smaller.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size is {batch_size}; allowed: 1 or more")
    regular_set = set(regular)
    if len(regular_set) != len(regular):
        raise ValueError("regular clips contain duplicates")
    gold = [g for g in dict.fromkeys(gold) if g not in regular_set]
    n_gold = min(gold_per_batch, len(gold))
    if n_gold >= batch_size:
        raise ValueError(f"gold_per_batch ({gold_per_batch}) must be smaller than batch_size ({batch_size})")
    per_batch = batch_size - n_gold
    regular = list(regular)
    rng.shuffle(regular)
    batches = []
    cursor = gold_offset
    for start in range(0, len(regular), per_batch):
        chunk = regular[start : start + per_batch]
        picked = [gold[(cursor + j) % len(gold)] for j in range(n_gold)] if n_gold else []
        cursor += n_gold
        size = len(chunk) + len(picked)
        gold_positions = set(rng.sample(range(size), len(picked)))
        items, gi, ri = [], iter(picked), iter(chunk)
        for pos in range(size):
            items.append(PlannedItem(next(gi), True) if pos in gold_positions else PlannedItem(next(ri), False))
        batches.append(items)
    return batches
