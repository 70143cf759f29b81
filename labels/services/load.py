"""Loading a dataset's approved crowd answers and in-house expert annotations as `Votes` arrays, with the gold
standard and each annotator's quality, for merging (labels.services.create) and comparing merge methods."""

import json
import logging
from array import array

import numpy as np
from django.db import connection
from django.db.models import Q

from catalog.models import Clip, Dataset, GoldLabel
from catalog.selectors.taxonomy import class_index as taxonomy_class_index
from catalog.selectors.taxonomy import class_names as taxonomy_class_names
from catalog.services.bulk import analyze_if_stale
from crowd.models import Assignment, Batch, BatchItem, ClipAnswer, ExpertAnnotation
from labels.core.quality import worker_quality_from_gold
from labels.core.votes import Votes
from labels.models import (
    ImmutableReleaseError,  # noqa: F401  (re-exported for callers)
)

log = logging.getLogger(__name__)

log = logging.getLogger(__name__)


class LoadedVotes:
    """Everything release_create needs from the database, as arrays plus lookup lists."""

    def __init__(self, votes, clip_ids, clip_pks, clip_is_gold, class_names, gold, annotator_keys, counts, catch_clips):
        self.votes = votes
        self.clip_ids = clip_ids
        self.clip_pks = clip_pks
        self.clip_is_gold = clip_is_gold
        self.class_names = class_names
        self.gold = gold
        self.annotator_keys = annotator_keys
        self.counts = counts
        self.catch_clips = catch_clips  # {group: (annotator, [catch clip indices])}, see labels.core.quality


def _ticked_labels_stream(answers_sql: str, params: list):
    """(answer id, class name, audible, visible) of every ticked label of the answers that `answers_sql` selects
    (its columns: id, labels; one query, streamed), unpacked by PostgreSQL's jsonb_array_elements instead of
    decoding every answer's full proposal list in Python. None on other backends (the caller decodes the JSON)."""
    if connection.vendor != "postgresql":
        return None
    sql = (
        "SELECT ca.id, e->>'name', (e->'audible') = 'true'::jsonb, (e->'visible') = 'true'::jsonb "
        f"FROM ({answers_sql}) ca CROSS JOIN LATERAL jsonb_array_elements("
        "CASE WHEN jsonb_typeof(ca.labels) = 'array' THEN ca.labels ELSE '[]'::jsonb END) e "
        "WHERE jsonb_typeof(e) = 'object' AND "
        "((e->'audible') = 'true'::jsonb OR (e->'visible') = 'true'::jsonb)"
    )
    return _stream(sql, params)


def _stream(sql: str, params, size: int = 20000):
    """Rows of one query, fetched `size` at a time (a server-side cursor on PostgreSQL: memory stays flat)."""
    with connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(size):
            yield from rows


def votes_load(dataset: Dataset, *, include_experts: bool = True, with_proposals: bool = True) -> LoadedVotes:
    """Approved, verified crowd answers (+ in-house expert annotations) of a dataset as `Votes`, one vote per
    (worker, clip) (the later submission).

    Annotator quality: a crowd worker's stored mean catch F1; when it has none (or for in-house experts) the
    catch F1 computed here against the gold labels of the gold clips it answered (pooled per assignment,
    averaged per annotator, as catch scoring does).
    """
    class_names = taxonomy_class_names()
    class_index = taxonomy_class_index()
    clip_rows = list(Clip.objects.filter(dataset=dataset).order_by("video_id").values_list("id", "video_id", "is_gold"))
    clip_pks = [r[0] for r in clip_rows]
    clip_ids = [r[1] for r in clip_rows]
    clip_is_gold = np.array([r[2] for r in clip_rows], dtype=bool)
    clip_idx = {pk: i for i, pk in enumerate(clip_pks)}

    ann_clip, ann_worker, ann_group, meta_flat = [], [], [], []
    tick_ann, tick_class, tick_aud, tick_vis = [], [], [], []
    worker_slot: dict = {}
    stored_quality: list = []
    empty = np.zeros(0, dtype=np.int64)
    crowd_ticks = (empty, empty, empty.astype(bool), empty.astype(bool))  # PostgreSQL: the crowd's ticks as arrays
    unknown_classes: dict[str, int] = {}

    def add(clip_pk, worker_key, quality, group, bm, vo, si, labels):
        a = len(ann_clip)
        ann_clip.append(clip_idx[clip_pk])
        slot = worker_slot.get(worker_key)
        if slot is None:
            slot = worker_slot[worker_key] = len(stored_quality)
            stored_quality.append(quality)
        ann_worker.append(slot)
        ann_group.append(group)
        meta_flat.extend((bool(bm), bool(vo), bool(si)))
        for lab in labels or ():
            aud = lab.get("audible")
            vis = lab.get("visible")
            if not (aud or vis):
                continue
            k = class_index.get(lab.get("name"))
            if k is None:
                unknown_classes[lab.get("name")] = unknown_classes.get(lab.get("name"), 0) + 1
                continue
            tick_ann.append(a)
            tick_class.append(k)
            tick_aud.append(bool(aud))
            tick_vis.append(bool(vis))

    analyze_if_stale(Batch, Assignment, ClipAnswer, BatchItem)  # fresh bulk-written rows: plan with statistics
    # Approved, verified assignments (a few thousand rows), then every answer of them in one streamed query ordered by
    # submission (plans stay one pass whatever the table statistics say; no IN list of ids, no model instances)
    approved = Assignment.objects.verified().filter(batch__dataset=dataset, status=Assignment.APPROVED)
    assignments = list(
        approved.order_by("submitted_at", "id").values_list("id", "worker_id", "worker__mean_catch_f1", "batch_id")
    )
    info = {a_id: (w_id, f1) for a_id, w_id, f1, _b in assignments}
    # the same filter as `approved`, as joins (a hash join over the answers, not an IN list of ids)
    answers = ClipAnswer.objects.filter(
        Q(assignment__verified_at__isnull=False) | Q(assignment__backend__in=Assignment.SELF_VERIFIED),
        assignment__batch__dataset=dataset,
        assignment__status=Assignment.APPROVED,
        media_failed=False,
    )
    labels_sql, labels_params = answers.order_by().values_list("id", "labels").query.sql_with_params()
    ticks = _ticked_labels_stream(labels_sql, list(labels_params))
    answers = answers.order_by("assignment__submitted_at", "assignment_id", "id").values_list(
        "assignment_id", "id", "clip_id", "background_music", "voice_over", "static_image"
    )
    if ticks is None:  # SQLite: the labels come with the answers and are decoded here
        answers = answers.values_list(
            "assignment_id", "id", "clip_id", "background_music", "voice_over", "static_image", "labels"
        )
    # One vote per (worker, clip): when a worker answered a clip in two assignments (two HITs of an imported
    # results file), the later submission counts; the earlier answer is kept in the database but not loaded.
    rows_kept, last_of = [], {}
    n_crowd = n_dropped = 0
    sql, params = answers.query.sql_with_params()
    for row in _stream(sql, params):
        assignment_id, answer_id, clip_pk, bm, vo, si = row[:6]
        if clip_pk not in clip_idx:
            continue
        worker_id, f1 = info[assignment_id]
        key = ("worker", worker_id if worker_id is not None else f"assignment-{assignment_id}")
        if (key, clip_pk) in last_of:
            n_dropped += 1
        last_of[(key, clip_pk)] = len(rows_kept)  # in submission order: the later one wins
        if ticks is None:  # the raw JSON text of the labels (the query bypasses the field's decoder)
            labels = json.loads(row[6]) if isinstance(row[6], str) else row[6]
            rows_kept.append((clip_pk, key, f1, assignment_id, bm, vo, si, labels if isinstance(labels, list) else ()))
        else:
            rows_kept.append((clip_pk, key, f1, assignment_id, bm, vo, si, answer_id))
    kept = sorted(last_of.values())
    del last_of
    if ticks is None:
        for i in kept:
            add(*rows_kept[i])
            n_crowd += 1
    else:
        # ticks arrive as one stream of (answer id, name, audible, visible); they are joined to the kept answers
        # by sorted answer id (an answer that lost to a later one has no annotation and its ticks are dropped)
        first_ann = len(ann_clip)
        ann_answer = np.empty(len(kept), dtype=np.int64)
        for j, i in enumerate(kept):
            row = rows_kept[i]
            add(*row[:7], ())
            ann_answer[j] = row[7]
            n_crowd += 1
        order = np.argsort(ann_answer)
        sorted_answer = ann_answer[order]
        # compact typed arrays, not lists of Python ints (1.2 M ticks at 150k clips)
        t_answer, t_class, t_aud, t_vis = array("q"), array("i"), array("b"), array("b")
        for answer_id, name, aud, vis in ticks:
            k = class_index.get(name)
            if k is None:
                unknown_classes[name] = unknown_classes.get(name, 0) + 1
                continue
            t_answer.append(answer_id)
            t_class.append(k)
            t_aud.append(bool(aud))
            t_vis.append(bool(vis))
        t_answer = np.frombuffer(t_answer, dtype=np.int64) if len(t_answer) else np.zeros(0, np.int64)
        pos = np.searchsorted(sorted_answer, t_answer)
        pos_c = np.minimum(pos, max(len(sorted_answer) - 1, 0))
        hit = (pos < len(sorted_answer)) & (sorted_answer[pos_c] == t_answer) if len(sorted_answer) else pos < 0
        crowd_tick_ann = first_ann + order[pos_c[hit]]
        crowd_ticks = (
            crowd_tick_ann,
            np.asarray(t_class, dtype=np.int64)[hit],
            np.asarray(t_aud, dtype=np.int8)[hit].astype(bool),
            np.asarray(t_vis, dtype=np.int8)[hit].astype(bool),
        )
    del rows_kept
    n_expert = 0
    if include_experts:
        experts = (
            ExpertAnnotation.objects.filter(clip__dataset=dataset)
            .order_by("updated_at", "id")
            .values_list("clip_id", "user_id", "background_music", "voice_over", "static_image", "labels")
        )
        for clip_pk, user_id, bm, vo, si, labels in experts.iterator(chunk_size=5000):
            # one pooled group per expert: "-user" keeps expert groups apart from assignment ids
            add(clip_pk, ("expert", user_id), None, -int(user_id) - 1, bm, vo, si, labels)
            n_expert += 1

    gold: dict[int, dict[int, str]] = {}
    for clip_pk, cls_index, modality in GoldLabel.objects.filter(clip__dataset=dataset).values_list(
        "clip_id", "cls__index", "modality"
    ):
        gold.setdefault(clip_idx[clip_pk], {})[cls_index] = modality

    cand_clip, cand_class = array("i"), array("i")  # ~30 per clip: 4.6 M at 150k clips, 4 bytes each
    if with_proposals and ann_clip:
        seen = set()
        for clip_pk, proposals in (
            BatchItem.objects.filter(clip__dataset=dataset)
            .values_list("clip_id", "proposals")
            .iterator(chunk_size=5000)
        ):
            if clip_pk in seen:
                continue
            seen.add(clip_pk)
            c = clip_idx[clip_pk]
            for name in proposals or ():
                k = class_index.get(name)
                if k is not None:
                    cand_clip.append(c)
                    cand_class.append(k)

    # group ids must be non-negative and distinct between assignments and experts
    groups = np.asarray(ann_group, dtype=np.int64)
    uniq_groups = np.unique(groups)
    if len(groups):
        groups = np.searchsorted(uniq_groups, groups)
    # the catch clips each approved assignment was shown (a clip it reported as not playing has no annotation above
    # but still counts in its catch F1, as in live scoring)
    catch_clips: dict[int, tuple[int, list[int]]] = {}
    if gold and assignments:
        by_batch: dict[int, list[int]] = {}
        for batch_id, clip_pk in BatchItem.objects.filter(
            batch_id__in={b for *_x, b in assignments}, is_gold=True
        ).values_list("batch_id", "clip_id"):
            if clip_pk in clip_idx:
                by_batch.setdefault(batch_id, []).append(clip_idx[clip_pk])
        for a_id, w_id, _f1, b_id in assignments:
            pos = int(np.searchsorted(uniq_groups, a_id))
            slot = worker_slot.get(("worker", w_id if w_id is not None else f"assignment-{a_id}"))
            if slot is not None and pos < len(uniq_groups) and uniq_groups[pos] == a_id and b_id in by_batch:
                catch_clips[pos] = (slot, by_batch[b_id])
    quality = np.array([np.nan if q is None else float(q) for q in stored_quality], dtype=float)
    tick_ann = np.concatenate([crowd_ticks[0], np.asarray(tick_ann, dtype=np.int64)])
    tick_class = np.concatenate([crowd_ticks[1], np.asarray(tick_class, dtype=np.int64)])
    tick_aud = np.concatenate([crowd_ticks[2], np.asarray(tick_aud, dtype=bool)])
    tick_vis = np.concatenate([crowd_ticks[3], np.asarray(tick_vis, dtype=bool)])
    votes = Votes(
        n_clips=len(clip_ids),
        n_classes=len(class_names),
        ann_clip=np.asarray(ann_clip, dtype=np.int64),
        ann_worker=np.asarray(ann_worker, dtype=np.int64),
        ann_meta=np.asarray(meta_flat, dtype=bool).reshape(-1, 3),
        ann_group=groups,
        tick_ann=np.asarray(tick_ann, dtype=np.int64),
        tick_class=np.asarray(tick_class, dtype=np.int64),
        tick_audible=np.asarray(tick_aud, dtype=bool),
        tick_visible=np.asarray(tick_vis, dtype=bool),
        worker_quality=quality,
        cand_clip=np.asarray(cand_clip, dtype=np.int64),
        cand_class=np.asarray(cand_class, dtype=np.int64),
    )
    if gold and np.isnan(quality).any():
        computed = worker_quality_from_gold(votes, gold, catch_clips=catch_clips)
        votes.worker_quality = np.where(np.isnan(quality), computed, quality)
    annotator_keys = list(worker_slot)
    counts = {
        "crowd_annotations": n_crowd,
        "expert_annotations": n_expert,
        "crowd_workers": sum(1 for k in annotator_keys if k[0] == "worker"),
        "experts": sum(1 for k in annotator_keys if k[0] == "expert"),
        "clips_in_dataset": len(clip_ids),
        "gold_clips": len(gold),
    }
    if n_dropped:
        counts["duplicate_votes_dropped"] = n_dropped  # same worker, same clip: only the later submission counts
    if unknown_classes:
        counts["unknown_classes_skipped"] = unknown_classes
    return LoadedVotes(votes, clip_ids, clip_pks, clip_is_gold, class_names, gold, annotator_keys, counts, catch_clips)
