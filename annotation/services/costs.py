"""Money: rewards, marketplace fees, what a publish would cost, and spend so far against a dataset's budget."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, Q

from annotation.marketplace import mturk
from annotation.marketplace.mturk import setting, to_cents

DEFAULT_SECONDS_PER_CLIP = 45.0


def prolific_fee_rate() -> Decimal:
    return Decimal(str(setting("PROLIFIC_FEE_RATE", "0.333")))


def cost_per_assignment(backend: str, reward: Decimal, max_assignments: int, masters: bool = False) -> Decimal:
    reward = Decimal(reward)
    if backend == "prolific":
        return to_cents(reward * (1 + prolific_fee_rate()))
    return reward + mturk.fee_per_assignment(reward, max_assignments, masters)


def seconds_per_clip() -> float:
    return float(setting("MTURK_SECONDS_PER_CLIP", DEFAULT_SECONDS_PER_CLIP))


def reward_for_batch(n_clips: int, *, seconds_per_clip_: float | None = None) -> Decimal:
    """Default reward: the expected minutes of work paid at the US federal minimum wage ($7.25/h)."""
    minutes = mturk.expected_minutes(n_clips, seconds_per_clip_ or seconds_per_clip())
    return mturk.default_reward(minutes)


@dataclass
class Spend:
    budget: Decimal
    paid: Decimal           # approved assignments + paid bonuses (with fees)
    committed: Decimal      # paid + what open assignments and pending bonuses may still cost
    bonuses_paid: Decimal

    @property
    def remaining(self) -> Decimal:
        return self.budget - self.committed

    @property
    def percent_of_budget(self) -> float:
        return float(100 * self.committed / self.budget) if self.budget else 0.0


def dataset_spend(dataset, *, sandbox: bool | None = None) -> Spend:
    """Spend of a dataset's published work. `sandbox` None = production and sandbox HITs alike."""
    from annotation.models import Assignment, Bonus, Hit

    hits = Hit.objects.filter(batch__dataset=dataset).exclude(status=Hit.FAILED)
    if sandbox is not None:
        hits = hits.filter(sandbox=sandbox)
    hits = hits.annotate(
        n_approved=Count("marketplace_assignments",
                         filter=Q(marketplace_assignments__assignment__status=Assignment.APPROVED), distinct=True),
        n_rejected=Count("marketplace_assignments",
                         filter=Q(marketplace_assignments__assignment__status=Assignment.REJECTED), distinct=True))
    paid = committed = Decimal(0)
    for hit in hits:
        per = hit.cost_per_assignment
        paid += per * hit.n_approved
        if hit.status == Hit.PENDING and not hit.external_id:
            committed += per * hit.max_assignments
        else:
            committed += per * max(0, hit.max_assignments - hit.n_rejected)
    bonuses = Bonus.objects.filter(assignment__batch__dataset=dataset)
    if sandbox is not None:
        bonuses = bonuses.filter(assignment__marketplace_records__hit__sandbox=sandbox).distinct()
    bonus_paid = sum((mturk.bonus_cost(b.amount) for b in bonuses.filter(status=Bonus.PAID)), Decimal(0))
    bonus_pending = sum((mturk.bonus_cost(b.amount) for b in bonuses.filter(status=Bonus.PENDING)), Decimal(0))
    return Spend(budget=Decimal(dataset.budget_usd), paid=to_cents(paid + bonus_paid),
                 committed=to_cents(committed + bonus_paid + bonus_pending), bonuses_paid=to_cents(bonus_paid))
