import random
from collections import Counter

import pytest

from crowd.core.batching import plan_batches


def test_every_regular_clip_once_gold_at_random_positions_and_rotating():
    regular = [f"r{i}" for i in range(90)]
    gold = [f"g{i}" for i in range(10)]
    plans = plan_batches(regular, gold, batch_size=20, gold_per_batch=2, rng=random.Random(1))
    assert len(plans) == 5
    placed = [it.video_id for plan in plans for it in plan if not it.is_gold]
    assert sorted(placed) == sorted(regular)
    for plan in plans:
        assert len(plan) == 20 and len({it.video_id for it in plan}) == 20
        assert sum(it.is_gold for it in plan) == 2
    # 5 batches x 2 gold = 10 slots over 10 gold clips: each gold clip used once (rotation, no repeats)
    used = Counter(it.video_id for plan in plans for it in plan if it.is_gold)
    assert set(used) == set(gold) and set(used.values()) == {1}
    positions = {tuple(i for i, it in enumerate(plan) if it.is_gold) for plan in plans}
    assert len(positions) > 1  # not always the same slots


def test_few_gold_clips_and_last_batch_smaller():
    plans = plan_batches([f"r{i}" for i in range(25)], ["g0"], batch_size=10, gold_per_batch=2, rng=random.Random(0))
    assert [len(p) for p in plans] == [10, 10, 8]
    assert all(sum(it.is_gold for it in p) == 1 for p in plans)


def test_gold_per_batch_must_leave_room():
    with pytest.raises(ValueError, match="smaller than batch_size"):
        plan_batches(["r"], ["g1", "g2"], batch_size=2, gold_per_batch=2, rng=random.Random(0))
