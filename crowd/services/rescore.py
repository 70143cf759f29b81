"""Re-scoring catch trials after the gold standard changed (e.g. gold imported after MTurk results): batch items
of clips that are now gold become catch trials, and every submitted assignment of those batches gets its catch
F1 again. Scores only, unless asked to decide: approving or rejecting is a marketplace decision."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction

from crowd.models import Assignment, BatchItem
from crowd.services.assignments import assignment_apply_policy, assignment_score, worker_update_stats


@dataclass
class RescoreReport:
    dry_run: bool
    decide: bool
    marked: list[tuple[str, str]] = field(default_factory=list)  # (batch uuid, video id) now a catch trial
    changes: list[dict] = field(default_factory=list)
    rescored: int = 0

    def lines(self) -> list[str]:
        verb = "would be" if self.dry_run else "were"
        out = [
            f"{len(self.marked)} batch item(s) {verb} marked as catch trials; {self.rescored} assignment(s) "
            f"re-scored, {len(self.changes)} changed{' (dry run: nothing was written)' if self.dry_run else ''}"
        ]
        out += [f"  catch trial: clip {vid} in batch {b}" for b, vid in self.marked[:200]]
        for c in self.changes:
            f1 = f"F1 {_f(c['old_f1'])} -> {_f(c['new_f1'])}"
            status = f"; {c['old_status']} -> {c['new_status']}" if c["old_status"] != c["new_status"] else ""
            out.append(f"  assignment {c['assignment']} (worker {c['worker']}): {f1}{status}")
        if not self.decide:
            out.append("no approve/reject decision was taken (pass --decide to apply the dataset policy)")
        return out

    def summary(self) -> dict:
        return {"marked": len(self.marked), "rescored": self.rescored, "changed": len(self.changes)}


def _f(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def catch_trials_rescore(dataset, *, dry_run: bool = False, decide: bool = False) -> RescoreReport:
    """Mark the batch items of gold clips as catch trials and re-score the submitted assignments of every batch
    with a catch trial. decide: also apply the dataset policy to verified assignments still waiting (submitted),
    and block workers below the floor. dry_run: report what would change, write nothing."""
    report = RescoreReport(dry_run=dry_run, decide=decide)
    with transaction.atomic():
        newly = BatchItem.objects.filter(batch__dataset=dataset, clip__is_gold=True, is_gold=False)
        report.marked = [(str(b), v) for b, v in newly.values_list("batch__uuid", "clip__video_id")]
        newly.update(is_gold=True)
        with_gold = BatchItem.objects.filter(batch__dataset=dataset, is_gold=True).values("batch_id")
        workers = {}
        qs = (
            Assignment.objects.filter(batch_id__in=with_gold)
            .exclude(status=Assignment.IN_PROGRESS)
            .select_related("worker", "batch__dataset")
            .order_by("id")
        )
        for a in qs:
            old_f1, old_status = a.catch_f1, a.status
            if decide and a.status == Assignment.SUBMITTED and a.is_verified:
                assignment_apply_policy(a)
            else:
                assignment_score(a)
            report.rescored += 1
            if a.worker_id:
                workers[a.worker_id] = a.worker
            if old_f1 != a.catch_f1 or old_status != a.status:
                report.changes.append(
                    {
                        "assignment": a.external_assignment_id or str(a.uuid),
                        "worker": a.worker.external_id if a.worker else "-",
                        "old_f1": old_f1,
                        "new_f1": a.catch_f1,
                        "old_status": old_status,
                        "new_status": a.status,
                    }
                )
        for worker in workers.values():
            worker_update_stats(worker, dataset if decide else None)
        if dry_run:
            transaction.set_rollback(True)
    return report
