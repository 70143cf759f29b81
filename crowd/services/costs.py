"""Money: rewards, marketplace fees, what a publish would cost, and spend so far against a dataset's budget."""

from __future__ import annotations

import functools
import math
import statistics
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

from django.db.models import Count

from crowd.marketplace import mturk
from crowd.marketplace.mturk import setting, to_cents
from crowd.models import Assignment, Bonus, Hit

DEFAULT_SECONDS_PER_CLIP = 45.0
PROLIFIC_MIN_HOURLY_USD = Decimal("8.00")  # Prolific refuses studies that pay less per hour
MIN_MEASURED_SUBMISSIONS = 5  # below this many timed submissions the per-clip time comes from the setting


def prolific_fee_rate() -> Decimal:
    return Decimal(str(setting("PROLIFIC_FEE_RATE", "0.333")))


def cost_per_assignment(backend: str, reward: Decimal, max_assignments: int, masters: bool = False) -> Decimal:
    reward = Decimal(reward)
    if backend == "prolific":
        return to_cents(reward * (1 + prolific_fee_rate()))
    return reward + mturk.fee_per_assignment(reward, max_assignments, masters)


def hit_cost_per_assignment(hit) -> Decimal:
    """What one assignment of a published HIT / study costs the requester (reward plus the marketplace's fee)."""
    return cost_per_assignment(hit.backend, hit.reward, hit.max_assignments, hit.masters)


def seconds_per_clip() -> float:
    return float(setting("MTURK_SECONDS_PER_CLIP", DEFAULT_SECONDS_PER_CLIP))


def reward_for_batch(n_clips: int, *, seconds_per_clip_: float | None = None) -> Decimal:
    """Default reward: the expected minutes of work paid at the US federal minimum wage ($7.25/h)."""
    minutes = mturk.expected_minutes(n_clips, seconds_per_clip_ or seconds_per_clip())
    return mturk.default_reward(minutes)


@dataclass
class Spend:
    budget: Decimal
    paid: Decimal  # approved assignments + paid bonuses (with fees)
    committed: Decimal  # paid + what open assignments and pending bonuses may still cost
    bonuses_paid: Decimal

    @property
    def remaining(self) -> Decimal:
        return self.budget - self.committed

    @property
    def percent_of_budget(self) -> float:
        return float(100 * self.committed / self.budget) if self.budget else 0.0


def dataset_spend(dataset, *, sandbox: bool | None = None) -> Spend:
    """Spend of a dataset's published work. `sandbox` None = production and sandbox HITs alike."""
    hits = Hit.objects.filter(batch__dataset=dataset).exclude(status=Hit.FAILED)
    if sandbox is not None:
        hits = hits.filter(sandbox=sandbox)
    # assignments of a HIT: its batch's, on its marketplace, bound to this HIT id (or to none, e.g. in-house tests)
    counts: dict[tuple, int] = {}
    rows = (
        Assignment.objects.filter(batch__dataset=dataset, status__in=(Assignment.APPROVED, Assignment.REJECTED))
        .values_list("batch_id", "backend", "external_hit_id", "status")
        .annotate(n=Count("id"))
    )
    for batch_id, backend, hit_id, status, n in rows:
        counts[(batch_id, backend, hit_id, status)] = n

    def n_of(batch_id, backend, external_id, status):
        return counts.get((batch_id, backend, external_id, status), 0) + (
            counts.get((batch_id, backend, "", status), 0) if external_id else 0
        )

    # plain tuples and one price per distinct (backend, reward, assignments, masters): no model instance per HIT
    price = functools.cache(cost_per_assignment)
    paid = committed = Decimal(0)
    for batch_id, backend, external_id, status, reward, max_assignments, masters in hits.values_list(
        "batch_id", "backend", "external_id", "status", "reward", "max_assignments", "masters"
    ):
        per = price(backend, reward, max_assignments, masters)
        paid += per * n_of(batch_id, backend, external_id, Assignment.APPROVED)
        if status == Hit.PENDING and not external_id:
            committed += per * max_assignments
        else:
            committed += per * max(0, max_assignments - n_of(batch_id, backend, external_id, Assignment.REJECTED))
    bonuses = Bonus.objects.filter(assignment__batch__dataset=dataset)
    if sandbox is not None:
        bonuses = bonuses.filter(assignment__marketplace_records__hit__sandbox=sandbox).distinct()
    bonus_paid = sum((mturk.bonus_cost(b.amount) for b in bonuses.filter(status=Bonus.PAID)), Decimal(0))
    bonus_pending = sum((mturk.bonus_cost(b.amount) for b in bonuses.filter(status=Bonus.PENDING)), Decimal(0))
    return Spend(
        budget=Decimal(dataset.budget_usd),
        paid=to_cents(paid + bonus_paid),
        committed=to_cents(committed + bonus_paid + bonus_pending),
        bonuses_paid=to_cents(bonus_paid),
    )


# --- Prolific: estimated completion time from measured work, and its minimum hourly pay ---------------------------


def prolific_min_hourly() -> Decimal:
    return Decimal(str(setting("PROLIFIC_MIN_HOURLY_USD", PROLIFIC_MIN_HOURLY_USD)))


def measured_minutes_per_clip(dataset) -> tuple[float | None, int]:
    """(median minutes per clip over the dataset's timed, verified submissions, how many there are); the median
    is None below MIN_MEASURED_SUBMISSIONS."""
    rows = (
        Assignment.objects.verified()
        .filter(
            batch__dataset=dataset,
            status__in=(Assignment.SUBMITTED, Assignment.APPROVED),
            work_seconds__gt=0,
        )
        .annotate(n_clips=Count("batch__items"))
        .values_list("work_seconds", "n_clips")
    )
    per_clip = [w / 60 / n for w, n in rows if n]
    if len(per_clip) < MIN_MEASURED_SUBMISSIONS:
        return None, len(per_clip)
    return float(statistics.median(per_clip)), len(per_clip)


@dataclass
class ProlificEstimate:
    n_clips: int
    minutes_per_clip: float
    measured_from: int  # timed submissions behind minutes_per_clip (0: the setting)
    minutes: int  # estimated_completion_time sent to Prolific
    min_hourly: Decimal

    def source(self) -> str:
        if self.measured_from:
            return f"measured median of {self.measured_from} submissions"
        return f"PROLIFIC_MINUTES_PER_CLIP until {MIN_MEASURED_SUBMISSIONS} timed submissions exist"

    def hourly(self, reward: Decimal) -> Decimal:
        return (Decimal(reward) * 60 / Decimal(self.minutes)).quantize(Decimal("0.01"))

    def refusal(self, reward: Decimal) -> str | None:
        """Why Prolific would refuse this reward (below its minimum hourly pay), with the numbers; or None."""
        if self.hourly(reward) >= self.min_hourly:
            return None
        return (
            f"reward ${Decimal(reward)} for an estimated {self.minutes} min ({self.n_clips} clips x "
            f"{self.minutes_per_clip:.2f} min per clip, {self.source()}) pays ${self.hourly(reward)}/h, below "
            f"Prolific's minimum of ${self.min_hourly}/h; offer at least ${prolific_reward_floor(self.minutes)}"
        )


def prolific_estimate(dataset, n_clips: int) -> ProlificEstimate:
    measured, n = measured_minutes_per_clip(dataset)
    per_clip = (
        measured if measured is not None else float(setting("PROLIFIC_MINUTES_PER_CLIP", seconds_per_clip() / 60))
    )
    minutes = max(1, math.ceil(per_clip * n_clips))
    return ProlificEstimate(n_clips, per_clip, n if measured is not None else 0, minutes, prolific_min_hourly())


def prolific_reward_floor(minutes: int) -> Decimal:
    """The smallest reward Prolific accepts for `minutes` of estimated work (its minimum hourly pay)."""
    return (Decimal(minutes) / 60 * prolific_min_hourly()).quantize(Decimal("0.01"), rounding=ROUND_CEILING)
