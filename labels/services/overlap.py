"""Adaptive overlap for a dataset: which clips still need votes (labels.core.overlap.plan_overlap over the approved
annotations), what finishing them would cost, and queueing them as batches that take just the votes they need."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
from django.db.models import Q

from catalog.errors import ValidationError
from catalog.models import Dataset
from crowd.models import Assignment, Batch, BatchItem
from crowd.services.batches import batches_create
from crowd.services.costs import cost_per_assignment, reward_for_batch
from labels.core.merge import EM_METHODS
from labels.core.overlap import plan_overlap
from labels.services.load import votes_load
from labels.services.quality import apply_worker_quality

EM_ONLY = EM_METHODS


@dataclass
class OverlapReport:
    dataset: Dataset
    params: dict
    clips: int  # non-gold clips of the dataset
    done: int  # enough votes (confident, unanimous or at max_votes)
    queued: int  # need votes but already queued (open batch, or work started / submitted and not yet judged)
    waiting: list = field(default_factory=list)  # [{"video_id", "votes", "expected_errors", "wanted"}], worst first
    vote_slots: int = 0  # clip votes the waiting clips need now
    assignments: int = 0  # assignments to buy for them (batches of batch_size - gold_per_batch clips)
    cost_usd: Decimal = Decimal("0")
    reward_usd: Decimal = Decimal("0")
    # the most finishing can cost: every waiting clip (and every queued one) taken up to max_votes
    max_vote_slots: int = 0
    max_assignments: int = 0
    max_cost_usd: Decimal = Decimal("0")


def _check(min_votes, max_votes, max_expected_errors, method):
    if method not in EM_ONLY:
        raise ValidationError(
            f"adaptive overlap needs a posterior; method {method!r} has none; use one of {', '.join(EM_ONLY)}",
            field="method",
        )
    if not (isinstance(min_votes, int) and isinstance(max_votes, int) and 1 <= min_votes <= max_votes <= 20):
        raise ValidationError(
            f"need 1 <= min_votes <= max_votes <= 20; got min_votes={min_votes!r}, max_votes={max_votes!r}",
            field="min_votes",
        )
    try:
        e = float(max_expected_errors)
    except (TypeError, ValueError):
        e = -1.0
    if not 0 <= e <= 100:
        raise ValidationError(
            f"max_expected_errors must be a number from 0 to 100; got {max_expected_errors!r}", field="max_errors"
        )
    return e


def overlap_report(
    dataset: Dataset,
    *,
    min_votes: int = 2,
    max_votes: int = 5,
    max_expected_errors: float = 1.5,
    method: str = "modality_ds",
    backend: str = "mturk",
) -> OverlapReport:
    """Plan the next votes of `dataset` (reads only). A clip waits when it needs a vote and no vote is on its way
    (it is in no open batch and in no batch with an assignment in progress or submitted)."""
    e = _check(min_votes, max_votes, max_expected_errors, method)
    loaded = votes_load(dataset)
    apply_worker_quality(loaded)
    non_gold = np.flatnonzero(~loaded.clip_is_gold)
    plan = plan_overlap(
        loaded.votes,
        gold=loaded.gold,
        method=method,
        min_votes=min_votes,
        max_votes=max_votes,
        max_expected_errors=e,
        clips=non_gold,
    )
    # votes on their way: clips of open batches, and of batches with work started or submitted but not yet judged
    pending = Batch.objects.filter(dataset=dataset).filter(
        Q(status=Batch.OPEN) | Q(assignments__status__in=(Assignment.IN_PROGRESS, Assignment.SUBMITTED))
    )
    open_pks = set(
        BatchItem.objects.filter(batch__in=pending, is_gold=False).values_list("clip_id", flat=True).distinct()
    )
    params = {
        "method": method,
        "min_votes": min_votes,
        "max_votes": max_votes,
        "max_expected_errors": e,
        "backend": backend,
    }
    report = OverlapReport(dataset, params, clips=len(non_gold), done=int(plan.done.sum()), queued=0)
    waiting = []
    remaining = []
    for c in np.flatnonzero(plan.need).tolist():
        n = int(plan.votes[c])
        remaining.append(max_votes - n)
        if loaded.clip_pks[c] in open_pks:
            report.queued += 1
            continue
        waiting.append(
            {
                "video_id": loaded.clip_ids[c],
                "votes": n,
                "expected_errors": round(float(plan.uncertainty[c]), 3),
                "wanted": max(min_votes - n, 1),
            }
        )
    waiting.sort(key=lambda r: (-r["wanted"], -r["expected_errors"], r["video_id"]))
    report.waiting = waiting
    per_batch = max(dataset.batch_size - dataset.gold_per_batch, 1)
    by_wanted: dict[int, int] = {}
    for r in waiting:
        by_wanted[r["wanted"]] = by_wanted.get(r["wanted"], 0) + 1
    report.vote_slots = sum(w * n for w, n in by_wanted.items())
    report.assignments = sum(w * math.ceil(n / per_batch) for w, n in by_wanted.items())
    reward = reward_for_batch(dataset.batch_size)
    report.reward_usd = reward
    report.cost_usd = sum(
        (cost_per_assignment(backend, reward, w) * w * math.ceil(n / per_batch) for w, n in by_wanted.items()),
        Decimal("0"),
    )
    # upper bound: every clip that is not done taken to max_votes, one vote per clip per round, the clips of a round
    # batched together (an assignment gives each clip of its batch one vote)
    rem = np.asarray(remaining, dtype=np.int64)
    report.max_vote_slots = int(rem.sum())
    report.max_assignments = sum(
        math.ceil(int((rem >= r).sum()) / per_batch) for r in range(1, int(rem.max(initial=0)) + 1)
    )
    report.max_cost_usd = cost_per_assignment(backend, reward, 1) * report.max_assignments
    return report


def overlap_queue(report: OverlapReport) -> list[Batch]:
    """Batches of the report's waiting clips, grouped by the votes they need: a clip with no vote yet takes
    min_votes annotators, one already voted on takes one more (Batch.annotations_wanted)."""
    by_wanted: dict[int, list[str]] = {}
    for r in report.waiting:
        by_wanted.setdefault(r["wanted"], []).append(r["video_id"])
    created = []
    for wanted, vids in sorted(by_wanted.items()):
        created += batches_create(report.dataset, clips=vids, annotations_wanted=wanted)
    return created
