"""Per-clip progress counters: `Clip.accepted_answers` is the number of approved annotations of the clip (answers of
approved assignments that are not a media-failure report), so the ops dashboard's buckets and clip lists are an
indexed read instead of an aggregate over every answer.

Kept in the transaction that changes them: `answers_accepted_shift` runs wherever an assignment's status becomes
or stops being approved (`crowd.services.assignments._set_status`, every approve / reject / re-decide / expire
path goes through it) and where an imported assignment arrives approved with its answers. It adds or removes
exactly this assignment's answers (a unique (assignment, clip) pair), so concurrent decisions on the same clips do
not lose each other's counts; the rows are locked in primary-key order first, so two decisions never deadlock.
`clips_accepted_recount` recomputes them from the answers (the data migration, bulk loads, a repair)."""

from __future__ import annotations

from django.db import connection
from django.db.models import F

from catalog.models import Clip
from crowd.models import Assignment


def answers_accepted_shift(assignment_pk: int, delta: int) -> int:
    """Add `delta` (+1 approved, -1 no longer approved) to the counter of every clip this assignment has a counted
    answer for; call inside the transaction that changes the status. Returns the number of clips changed."""
    clips = Clip.objects.filter(answers__assignment_id=assignment_pk, answers__media_failed=False)
    ids = list(clips.select_for_update(of=("self",)).order_by("pk").values_list("pk", flat=True))
    if not ids:
        return 0
    return Clip.objects.filter(pk__in=ids).update(accepted_answers=F("accepted_answers") + delta)


def status_change_shift(assignment_pk: int, old: str, new: str) -> int:
    """The counter change for a status change from `old` to `new` (nothing unless approved is on one side)."""
    if (old == Assignment.APPROVED) == (new == Assignment.APPROVED):
        return 0
    return answers_accepted_shift(assignment_pk, 1 if new == Assignment.APPROVED else -1)


# set-based (one grouped pass over the answers, then a join), not a correlated count per clip: the counters of
# 154k clips in seconds; UPDATE ... FROM works on PostgreSQL and SQLite >= 3.33
RECOUNT_SQL = """
UPDATE annotation_clip SET accepted_answers = COALESCE(t.n, 0)
FROM annotation_clip AS c LEFT JOIN (
    SELECT ca.clip_id, COUNT(*) AS n FROM annotation_clipanswer ca
    JOIN annotation_assignment a ON a.id = ca.assignment_id
    WHERE a.status = %s AND NOT ca.media_failed
    GROUP BY ca.clip_id
) AS t ON t.clip_id = c.id
WHERE annotation_clip.id = c.id AND annotation_clip.accepted_answers <> COALESCE(t.n, 0)
"""


def clips_accepted_recount(dataset_id: int | None = None) -> int:
    """Recompute the counters (of one dataset, or of all) from the answers: one UPDATE of the clips whose
    counter differs; returns how many changed."""
    sql, params = RECOUNT_SQL, [Assignment.APPROVED]
    if dataset_id is not None:
        sql, params = sql + " AND c.dataset_id = %s", [*params, dataset_id]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount
