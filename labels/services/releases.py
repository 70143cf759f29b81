"""Label-set releases: create (load, merge, close over relations, store), diff, export, import.

Loading and storing live here; the algorithms are pure (annotation.core.merge / agreement / taxonomy).
Releases are immutable: there is no update service, and the models refuse to save an existing row.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from pathlib import Path

import numpy as np
from django.core.files.base import ContentFile
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from catalog.core.label_csv import read_label_csv
from catalog.core.taxonomy import closure
from catalog.core.vocabulary import LABEL_CSV_COLUMNS, META_LABELS, MODALITIES
from catalog.errors import ImportFailed, NotFound, ValidationError
from catalog.models import Clip, Dataset, GoldLabel, Operation, TaxonomyClass
from catalog.selectors.taxonomy import relations
from catalog.services.operations import operation_finish
from crowd.models import Assignment, BatchItem, ClipAnswer, ExpertAnnotation
from crowd.services.batches import batches_create
from labels.core.agreement import agreement
from labels.core.merge import METHODS, merge
from labels.core.quality import worker_quality_from_gold
from labels.core.votes import MODALITY_NAMES, Votes
from labels.models import (
    ImmutableReleaseError,  # noqa: F401  (re-exported for callers)
    Release,
    ReleaseClip,
    ReleaseExport,
    ReleaseLabel,
)

log = logging.getLogger(__name__)

CSV_COLUMNS = LABEL_CSV_COLUMNS
EXPORT_FORMATS = ("vggsounder-csv", "jsonl", "parquet")
EXPORT_CONTENT_TYPES = {
    "vggsounder-csv": "text/csv; charset=utf-8",
    "jsonl": "application/x-ndjson",
    "parquet": "application/vnd.apache.parquet",
}
EXPORT_EXTENSIONS = {"vggsounder-csv": "csv", "jsonl": "jsonl", "parquet": "parquet"}
ORIGIN_SEPARATOR = "|"


# -- loading ------------------------------------------------------------------------------------------------


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


def _class_names() -> list[str]:
    return list(TaxonomyClass.objects.order_by("index").values_list("name", flat=True))


def _ticked_labels_sql(assignment_ids: list[int]) -> dict[int, list[dict]] | None:
    """{answer id: [{"name", "audible", "visible"}]} of the ticked labels only, unpacked by the database's JSON
    table function (PostgreSQL jsonb_array_elements) instead of decoding every answer's full proposal list in
    Python. None for other backends (the caller decodes the JSON itself)."""
    if not assignment_ids:
        return {}
    table = connection.ops.quote_name(ClipAnswer._meta.db_table)
    marks = ", ".join(["%s"] * len(assignment_ids))
    if connection.vendor == "postgresql":
        sql = (
            f"SELECT ca.id, e->>'name', (e->'audible') = 'true'::jsonb, (e->'visible') = 'true'::jsonb "
            f"FROM {table} ca CROSS JOIN LATERAL jsonb_array_elements("
            f"CASE WHEN jsonb_typeof(ca.labels) = 'array' THEN ca.labels ELSE '[]'::jsonb END) e "
            f"WHERE ca.assignment_id IN ({marks}) AND jsonb_typeof(e) = 'object' AND "
            f"((e->'audible') = 'true'::jsonb OR (e->'visible') = 'true'::jsonb)"
        )
    else:  # SQLite's json_each is no faster than decoding in Python here (measured)
        return None
    out: dict[int, list[dict]] = {}
    with connection.cursor() as cursor:
        cursor.execute(sql, assignment_ids)
        for answer_id, name, aud, vis in cursor.fetchall():
            out.setdefault(answer_id, []).append({"name": name, "audible": bool(aud), "visible": bool(vis)})
    return out


def votes_load(dataset: Dataset, *, include_experts: bool = True, with_proposals: bool = True) -> LoadedVotes:
    """Approved crowd answers (+ in-house expert annotations) of a dataset as `Votes`.

    Annotator quality: a crowd worker's stored mean catch F1; when it has none (or for in-house experts) the
    catch F1 computed here against the gold labels of the gold clips it answered (pooled per assignment,
    averaged per annotator, as catch scoring does).
    """
    class_names = _class_names()
    class_index = {n: i for i, n in enumerate(class_names)}
    clip_rows = list(Clip.objects.filter(dataset=dataset).order_by("video_id").values_list("id", "video_id", "is_gold"))
    clip_pks = [r[0] for r in clip_rows]
    clip_ids = [r[1] for r in clip_rows]
    clip_is_gold = np.array([r[2] for r in clip_rows], dtype=bool)
    clip_idx = {pk: i for i, pk in enumerate(clip_pks)}

    ann_clip, ann_worker, ann_group, meta_flat = [], [], [], []
    tick_ann, tick_class, tick_aud, tick_vis = [], [], [], []
    worker_slot: dict = {}
    stored_quality: list = []
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

    # Approved assignments first (a few thousand rows), then their answers by assignment id in chunks: plans
    # stay index lookups whatever the table statistics say. Load order: submission time, assignment, answer.
    assignments = list(
        Assignment.objects.filter(batch__dataset=dataset, status=Assignment.APPROVED)
        .order_by("submitted_at", "id")
        .values_list("id", "worker_id", "worker__mean_catch_f1", "batch_id")
    )
    n_crowd = 0
    chunk = 500
    for start in range(0, len(assignments), chunk):
        part = assignments[start : start + chunk]
        info = {a_id: (w_id, f1) for a_id, w_id, f1, _b in part}
        rank = {a_id: i for i, (a_id, _w, _f, _b) in enumerate(part)}
        ticks = _ticked_labels_sql(list(info))  # None: backend without JSON table functions
        fields = ["assignment_id", "id", "clip_id", "background_music", "voice_over", "static_image"]
        rows = list(
            ClipAnswer.objects.filter(assignment_id__in=list(info), media_failed=False).values_list(
                *(fields if ticks is not None else fields + ["labels"])
            )
        )
        rows.sort(key=lambda r: (rank[r[0]], r[1]))
        for row in rows:
            assignment_id, answer_id, clip_pk, bm, vo, si = row[:6]
            if clip_pk not in clip_idx:
                continue
            worker_id, f1 = info[assignment_id]
            key = ("worker", worker_id if worker_id is not None else f"assignment-{assignment_id}")
            add(clip_pk, key, f1, assignment_id, bm, vo, si, ticks.get(answer_id, ()) if ticks is not None else row[6])
            n_crowd += 1
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

    cand_clip, cand_class = [], []
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
    if unknown_classes:
        counts["unknown_classes_skipped"] = unknown_classes
    return LoadedVotes(votes, clip_ids, clip_pks, clip_is_gold, class_names, gold, annotator_keys, counts, catch_clips)


# -- create -------------------------------------------------------------------------------------------------


def _check_name(dataset: Dataset, name: str):
    name = (name or "").strip()
    if not name or len(name) > 100 or any(ch in name for ch in "/\\\n\r\t"):
        raise ValidationError(
            f"release name {name!r} is not allowed; use 1-100 characters without / \\ or line breaks", field="name"
        )
    if Release.objects.filter(dataset=dataset, name=name).exists():
        raise ValidationError(
            f"dataset {dataset.name} already has a release named {name!r}; releases are immutable, pick a new name",
            field="name",
        )
    return name


def _no_annotations(dataset: Dataset) -> ValidationError:
    return ValidationError(
        f"dataset {dataset.name} has no approved annotations yet; approve some assignments "
        "(or add in-house annotations) before creating a release",
        field="dataset",
    )


def _check_request(dataset: Dataset, name: str, method: str, params: dict | None) -> tuple[str, dict]:
    """(clean name, params with k) for a release request, or ValidationError naming the field."""
    if method not in METHODS:
        raise ValidationError(f"unknown merge method {method!r}; allowed: {', '.join(METHODS)}", field="method")
    params = dict(params or {})
    k = params.setdefault("k", int(dataset.annotations_per_clip or 3))
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValidationError(f"k must be a positive integer; got {k!r}", field="k")
    return _check_name(dataset, name), params


def release_stats(clip_meta: np.ndarray, label_rows: list, n_clips: int) -> dict:
    """Summary like the VGGSounder overview: clips, labels per clip, modality and meta shares, origins."""
    n_labels = len(label_rows)
    per_clip = np.zeros(n_clips, dtype=np.int64)
    mods = {"A": 0, "V": 0, "AV": 0}
    origins = {"human": 0, "auto": 0, "override": 0}
    for row in label_rows:
        per_clip[row[0]] += 1
        mods[row[2]] += 1
        origins[row[3]] += 1
    hist = np.bincount(per_clip, minlength=1)
    stats = {
        "clips": int(n_clips),
        "clips_with_labels": int((per_clip > 0).sum()),
        "labels": int(n_labels),
        "labels_per_clip_mean": round(float(per_clip.mean()), 4) if n_clips else 0.0,
        "labels_per_clip_median": float(np.median(per_clip)) if n_clips else 0.0,
        "labels_per_clip_histogram": {str(i): int(c) for i, c in enumerate(hist.tolist()) if c},
        "modality_counts": mods,
        "modality_shares": {m: round(c / n_labels, 4) if n_labels else 0.0 for m, c in mods.items()},
        "origin_counts": origins,
        "meta_counts": {m: int(clip_meta[:, j].sum()) if n_clips else 0 for j, m in enumerate(META_LABELS)},
        "meta_shares": {
            m: round(float(clip_meta[:, j].mean()), 4) if n_clips else 0.0 for j, m in enumerate(META_LABELS)
        },
    }
    return stats


def release_create(
    dataset: Dataset,
    name: str,
    *,
    method: str = "majority",
    params: dict | None = None,
    user=None,
    gold_override: bool = True,
    include_experts: bool = True,
    timings: dict | None = None,
) -> Release:
    """Merge the dataset's approved annotations into a new immutable release.

    method: one of METHODS; params: {"k": 3, ...} passed to the merge. Gold clips that have gold labels take
    those labels (origin "override") when gold_override. Every label set is closed over the taxonomy's
    synonyms and superclasses (origin "auto", origin_source = the classes it came from). Clips with fewer
    than k approved annotations are left out and listed in stats["needs_annotation"]. timings: optional dict
    that receives the seconds spent in load / merge / closure / agreement / store.
    """
    timings = {} if timings is None else timings
    t0 = time.perf_counter()

    name, params = _check_request(dataset, name, method, params)
    loaded = votes_load(dataset, include_experts=include_experts, with_proposals=True)
    votes = loaded.votes
    timings["load"] = time.perf_counter() - t0
    if loaded.counts["crowd_annotations"] == 0 and loaded.counts["expert_annotations"] == 0:
        raise _no_annotations(dataset)
    merge_params = {key: v for key, v in params.items() if key in ("k", "n_iter", "tol", "floor")}
    t0 = time.perf_counter()
    result = merge(votes, method, gold=loaded.gold if method == "dawid_skene" else None, **merge_params)
    timings["merge"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    synonyms, superclasses = relations()
    class_names = loaded.class_names
    clip_ids = loaded.clip_ids

    # per merged clip: {class name: modality}
    merged: dict[int, dict[str, str]] = {int(c): {} for c in result.clips.tolist()}
    for c, kk, m in zip(result.label_clip.tolist(), result.label_class.tolist(), result.label_modality.tolist()):
        merged[c][class_names[kk]] = MODALITY_NAMES[m]
    overridden = set()
    if gold_override:
        for c, labels in loaded.gold.items():
            if c in merged and loaded.clip_is_gold[c]:
                gold_labels = {class_names[kk]: m for kk, m in labels.items() if m in MODALITIES}
                if gold_labels:
                    merged[c] = gold_labels
                    overridden.add(c)

    # rows sorted by video id then label (clips are already in video id order)
    order_clips = sorted(merged, key=lambda c: clip_ids[c])
    meta_by_clip = {int(c): row for c, row in zip(result.clips.tolist(), result.meta.tolist())}
    label_rows = []  # (clip position, name, modality, origin, origin_source)
    for pos, c in enumerate(order_clips):
        closed = closure(merged[c], synonyms, superclasses)
        base_origin = ReleaseLabel.OVERRIDE if c in overridden else ReleaseLabel.HUMAN
        for label in sorted(closed):
            modality, sources = closed[label]
            if sources:
                label_rows.append((pos, label, modality, ReleaseLabel.AUTO, ORIGIN_SEPARATOR.join(sources)))
            else:
                label_rows.append((pos, label, modality, base_origin, "gold" if c in overridden else ""))
    clip_meta = np.array([meta_by_clip[c] for c in order_clips], dtype=bool).reshape(-1, 3)
    timings["closure"] = time.perf_counter() - t0
    t0 = time.perf_counter()

    stats = release_stats(clip_meta, label_rows, len(order_clips))
    needs = result.needs_annotation
    with_some = needs[result.n_annotations[needs] > 0]
    stats["needs_annotation"] = int(len(needs))
    stats["needs_annotation_with_some"] = int(len(with_some))
    stats["needs_annotation_ids"] = [clip_ids[c] for c in needs.tolist()]
    stats["gold_overridden_clips"] = len(overridden)
    stats["agreement"] = agreement(votes, clips=result.clips, class_names=class_names)
    timings["stats_agreement"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    source_counts = dict(loaded.counts)
    source_counts["annotations_used"] = int(result.used.sum())
    params_stored = dict(params, gold_override=gold_override, include_experts=include_experts)
    params_stored.update({k_: v for k_, v in result.params.items() if k_ not in params_stored})

    release = _store(
        dataset,
        name,
        method,
        params_stored,
        False,
        "",
        source_counts,
        stats,
        user,
        [(clip_ids[c], loaded.clip_pks[c], meta_by_clip[c]) for c in order_clips],
        label_rows,
    )
    timings["store"] = time.perf_counter() - t0
    log.info("release %s created: %d clips, %d labels", release, len(order_clips), len(label_rows))
    return release


def release_create_request(
    dataset: Dataset,
    name: str,
    *,
    method: str = "majority",
    params: dict | None = None,
    user=None,
    gold_override: bool = True,
) -> Operation:
    """Check a request for a release made in the background (a bad name, method or k, or a dataset without
    approved annotations, is refused and nothing is recorded) and record it as a running Operation (kind
    "release"); labels.tasks.release_create_start queues the work, which reports its outcome on the Operation.
    A release of a dataset several times VGGSounder's size (6 s at 15,000 clips) would outlast a web
    request's timeout."""
    name, params = _check_request(dataset, name, method, params)
    if not (
        ClipAnswer.objects.filter(
            assignment__batch__dataset=dataset, assignment__status=Assignment.APPROVED, media_failed=False
        ).exists()
        or ExpertAnnotation.objects.filter(clip__dataset=dataset).exists()
    ):
        raise _no_annotations(dataset)
    with transaction.atomic():
        op = Operation.objects.create(
            kind=Operation.RELEASE,
            dataset=dataset,
            total=1,
            started_by=user,
            message=f"merging the approved annotations of {dataset.name} into release {name!r} ({method})",
            summary={"name": name, "method": method, "params": params, "gold_override": gold_override},
        )
    return op


def release_create_run(operation_id: int) -> Operation:
    """The background half of release_create_start (see operation_finish): the release's size and link, or
    the reason it failed, end up on the Operation."""

    def work(op):
        s = op.summary
        release = Release.objects.filter(dataset=op.dataset, name=s["name"], created_at__gte=op.started_at).first()
        if release is None:  # else: stored by an earlier delivery that died before recording it
            release = release_create(
                op.dataset,
                s["name"],
                method=s["method"],
                params=s["params"],
                user=op.started_by,
                gold_override=s["gold_override"],
            )
        st = release.stats or {}
        return (
            f"release {op.dataset.name}/{release.name} created: {st.get('clips', 0)} clips, "
            f"{st.get('labels', 0)} labels, {st.get('needs_annotation', 0)} clips need more annotation",
            {"release": release.pk, "url": reverse("releases:detail", args=[release.pk])},
        )

    return operation_finish(operation_id, work)


def _bulk_insert(model, columns: list[str], rows) -> None:
    """Multi-row INSERT of plain tuples (no model instances): executemany on SQLite, execute_values on
    PostgreSQL, bulk_create elsewhere. Column names are field attnames."""
    rows = list(rows)
    if not rows:
        return
    table = model._meta.db_table
    qn = connection.ops.quote_name
    cols = ", ".join(qn(c) for c in columns)
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            marks = ", ".join(["%s"] * len(columns))
            cursor.executemany(f"INSERT INTO {qn(table)} ({cols}) VALUES ({marks})", rows)
        elif connection.vendor == "postgresql":
            from psycopg2.extras import execute_values  # noqa: PLC0415 - the PostgreSQL driver, only on PostgreSQL

            execute_values(cursor.cursor, f"INSERT INTO {qn(table)} ({cols}) VALUES %s", rows, page_size=5000)
        else:  # pragma: no cover - other backends
            model.objects.bulk_create([model(**dict(zip(columns, r))) for r in rows], batch_size=2000)


def _store(dataset, name, method, params, imported, source_file, source_counts, stats, user, clips, label_rows):
    """clips: [(video_id, clip pk or None, (bm, vo, si))] in order; label_rows: [(clip position, name, modality,
    origin, origin_source)] in order. One transaction, multi-row inserts."""
    cls_pk = dict(TaxonomyClass.objects.values_list("name", "id"))
    with transaction.atomic():
        if Release.objects.filter(dataset=dataset, name=name).exists():
            raise ValidationError(f"dataset {dataset.name} already has a release named {name!r}", field="name")
        release = Release.objects.create(
            dataset=dataset,
            name=name,
            method=method,
            params=params,
            imported=imported,
            source_file=source_file,
            source_counts=source_counts,
            stats=stats,
            created_by=user,
        )
        _bulk_insert(
            ReleaseClip,
            ["release_id", "video_id", "clip_id", "background_music", "voice_over", "static_image", "order"],
            (
                (release.pk, vid, pk, bool(meta[0]), bool(meta[1]), bool(meta[2]), i)
                for i, (vid, pk, meta) in enumerate(clips)
            ),
        )
        pk_by_order = dict(ReleaseClip.objects.filter(release=release).values_list("order", "id"))
        _bulk_insert(
            ReleaseLabel,
            ["release_id", "release_clip_id", "cls_id", "name", "modality", "origin", "origin_source", "order"],
            (
                (release.pk, pk_by_order[pos], cls_pk[lab], lab, mod, origin, src, i)
                for i, (pos, lab, mod, origin, src) in enumerate(label_rows)
            ),
        )
    return release


# -- diff ---------------------------------------------------------------------------------------------------


def release_content(release: Release):
    """(meta, labels) of a release in row order: meta {video_id: (bm, vo, si)}, labels {video_id: {class:
    modality}} with every clip (clips without labels map to {})."""
    meta = {
        vid: (bm, vo, si)
        for vid, bm, vo, si in ReleaseClip.objects.filter(release=release).values_list(
            "video_id", "background_music", "voice_over", "static_image"
        )
    }
    labels: dict[str, dict[str, str]] = {vid: {} for vid in meta}
    for vid, name, mod in (
        ReleaseLabel.objects.filter(release=release)
        .values_list("release_clip__video_id", "name", "modality")
        .iterator(chunk_size=10000)
    ):
        labels[vid][name] = mod
    return meta, labels


def release_diff(a: Release, b: Release) -> dict:
    """What changed from release a to release b, per clip and in totals.

    Returns {"totals": {...}, "clips": {video_id: {"added": [(label, modality)], "removed": [...],
    "modality_changed": [(label, old, new)], "meta_changed": {meta: (old, new)}, "only_in": "a"|"b"|None}}}
    (clips without changes are omitted).
    """
    meta_a, lab_a = release_content(a)
    meta_b, lab_b = release_content(b)
    totals = {
        "clips_a": len(meta_a),
        "clips_b": len(meta_b),
        "clips_only_in_a": 0,
        "clips_only_in_b": 0,
        "clips_changed": 0,
        "labels_added": 0,
        "labels_removed": 0,
        "modality_changed": 0,
        "meta_changed": {m: 0 for m in META_LABELS},
    }
    clips = {}
    for vid in sorted(set(meta_a) | set(meta_b)):
        la, lb = lab_a.get(vid, {}), lab_b.get(vid, {})
        entry = {
            "added": sorted((n, lb[n]) for n in set(lb) - set(la)),
            "removed": sorted((n, la[n]) for n in set(la) - set(lb)),
            "modality_changed": sorted((n, la[n], lb[n]) for n in set(la) & set(lb) if la[n] != lb[n]),
            "meta_changed": {},
            "only_in": None,
        }
        if vid not in meta_a:
            entry["only_in"] = "b"
            totals["clips_only_in_b"] += 1
        elif vid not in meta_b:
            entry["only_in"] = "a"
            totals["clips_only_in_a"] += 1
        else:
            for j, m in enumerate(META_LABELS):
                if meta_a[vid][j] != meta_b[vid][j]:
                    entry["meta_changed"][m] = (meta_a[vid][j], meta_b[vid][j])
                    totals["meta_changed"][m] += 1
        totals["labels_added"] += len(entry["added"])
        totals["labels_removed"] += len(entry["removed"])
        totals["modality_changed"] += len(entry["modality_changed"])
        if entry["added"] or entry["removed"] or entry["modality_changed"] or entry["meta_changed"] or entry["only_in"]:
            clips[vid] = entry
            totals["clips_changed"] += 1
    return {"a": f"{a.dataset.name}/{a.name}", "b": f"{b.dataset.name}/{b.name}", "totals": totals, "clips": clips}


def release_diff_text(diff: dict, max_clips: int | None = 50) -> str:
    t = diff["totals"]
    lines = [
        f"{diff['a']} -> {diff['b']}",
        f"clips: {t['clips_a']} -> {t['clips_b']} ({t['clips_only_in_a']} only in a, {t['clips_only_in_b']} only "
        f"in b, {t['clips_changed']} changed)",
        f"labels added: {t['labels_added']}, removed: {t['labels_removed']}, modality changed: {t['modality_changed']}",
        "meta changed: " + ", ".join(f"{m} {n}" for m, n in t["meta_changed"].items()),
    ]
    for i, (vid, e) in enumerate(diff["clips"].items()):
        if max_clips is not None and i >= max_clips:
            lines.append(f"... {len(diff['clips']) - max_clips} more clips (use --all)")
            break
        parts = []
        if e["only_in"]:
            parts.append(f"only in {e['only_in']}")
        parts += [f"+{n} ({m})" for n, m in e["added"]]
        parts += [f"-{n} ({m})" for n, m in e["removed"]]
        parts += [f"~{n} {o}->{nw}" for n, o, nw in e["modality_changed"]]
        parts += [f"{m} {o}->{nw}" for m, (o, nw) in e["meta_changed"].items()]
        lines.append(f"  {vid}: " + "; ".join(parts))
    return "\n".join(lines)


# -- export -------------------------------------------------------------------------------------------------


def release_rows(release: Release, *, include_background_music: bool = True):
    """(video_id, label, modality, background_music, static_image, voice_over, origin, origin_source) in the
    release's row order, streamed from the database."""
    qs = ReleaseLabel.objects.filter(release=release)
    if not include_background_music:
        qs = qs.filter(release_clip__background_music=False)
    return (
        qs.order_by("order")
        .values_list(
            "release_clip__video_id",
            "name",
            "modality",
            "release_clip__background_music",
            "release_clip__static_image",
            "release_clip__voice_over",
            "origin",
            "origin_source",
        )
        .iterator(chunk_size=10000)
    )


def release_row_count(release: Release, *, include_background_music: bool = True) -> int:
    qs = ReleaseLabel.objects.filter(release=release)
    if not include_background_music:
        qs = qs.filter(release_clip__background_music=False)
    return qs.count()


def release_to_dataframe(release: Release):
    """pandas DataFrame video_id,label,modality,background_music,static_image,voice_over in the release's row
    order (all clips, including those with background music); booleans as bool."""
    import pandas as pd  # noqa: PLC0415 - pandas is heavy; only metric reports read releases as frames

    rows = [r[:6] for r in release_rows(release, include_background_music=True)]
    df = pd.DataFrame(rows, columns=CSV_COLUMNS)
    for col in ("background_music", "static_image", "voice_over"):
        df[col] = df[col].astype(bool)
    return df


def _check_format(fmt: str):
    if fmt not in EXPORT_FORMATS:
        raise ValidationError(f"unknown export format {fmt!r}; allowed: {', '.join(EXPORT_FORMATS)}", field="format")


def export_chunks(
    release: Release,
    fmt: str = "vggsounder-csv",
    *,
    include_background_music: bool = False,
    progress=None,
    chunk_rows: int = 5000,
):
    """Yield the export as bytes chunks (CSV / JSONL streamed; Parquet built in memory, then yielded).

    progress: optional callable(rows_done) called after each chunk.
    """
    _check_format(fmt)
    rows = release_rows(release, include_background_music=include_background_music)
    if fmt == "parquet":
        yield _parquet_bytes(release, include_background_music, progress)
        return
    if fmt == "vggsounder-csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        n = 0
        for r in rows:
            writer.writerow(
                (
                    r[0],
                    r[1],
                    r[2],
                    "True" if r[3] else "False",
                    "True" if r[4] else "False",
                    "True" if r[5] else "False",
                )
            )
            n += 1
            if n % chunk_rows == 0:
                yield buf.getvalue().encode("utf-8")
                buf.seek(0)
                buf.truncate()
                if progress:
                    progress(n)
        yield buf.getvalue().encode("utf-8")
        if progress:
            progress(n)
        return
    # jsonl: one line per clip (clips without labels included), in row order
    n = 0
    out = []
    clip_filter = {} if include_background_music else {"background_music": False}
    clips = (
        ReleaseClip.objects.filter(release=release, **clip_filter)
        .order_by("order")
        .values_list("id", "video_id", "background_music", "voice_over", "static_image")
    )
    labels_by_clip: dict[int, list] = {}
    for rc_id, name, mod, origin, src in (
        ReleaseLabel.objects.filter(release=release)
        .order_by("order")
        .values_list("release_clip_id", "name", "modality", "origin", "origin_source")
        .iterator(chunk_size=10000)
    ):
        item = {"label": name, "modality": mod, "origin": origin}
        if src:
            item["origin_source"] = src.split(ORIGIN_SEPARATOR) if origin == ReleaseLabel.AUTO else src
        labels_by_clip.setdefault(rc_id, []).append(item)
    for rc_id, vid, bm, vo, si in clips.iterator(chunk_size=10000):
        labels = labels_by_clip.get(rc_id, [])
        out.append(
            json.dumps(
                {"video_id": vid, "labels": labels, "background_music": bm, "voice_over": vo, "static_image": si},
                ensure_ascii=False,
            )
        )
        n += len(labels)
        if len(out) >= chunk_rows:
            yield ("\n".join(out) + "\n").encode("utf-8")
            out = []
            if progress:
                progress(n)
    if out:
        yield ("\n".join(out) + "\n").encode("utf-8")
    if progress:
        progress(n)


def _parquet_bytes(release, include_background_music, progress=None) -> bytes:
    import pyarrow as pa  # noqa: PLC0415 - pyarrow is heavy and only Parquet exports need it
    import pyarrow.parquet as pq  # noqa: PLC0415 - as above

    cols = [[] for _ in range(8)]
    for r in release_rows(release, include_background_music=include_background_music):
        for i, v in enumerate(r):
            cols[i].append(v)
    table = pa.table(
        {
            "video_id": pa.array(cols[0], pa.string()),
            "label": pa.array(cols[1], pa.string()),
            "modality": pa.array(cols[2], pa.string()),
            "background_music": pa.array(cols[3], pa.bool_()),
            "static_image": pa.array(cols[4], pa.bool_()),
            "voice_over": pa.array(cols[5], pa.bool_()),
            "origin": pa.array(cols[6], pa.string()),
            "origin_source": pa.array(cols[7], pa.string()),
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    if progress:
        progress(len(cols[0]))
    return sink.getvalue()


def release_export_to_file(
    release: Release, fmt: str, path, *, include_background_music: bool = False, progress=None
) -> int:
    """Write an export to `path`; returns bytes written."""
    _check_format(fmt)
    total = 0
    with open(path, "wb") as fh:
        for chunk in export_chunks(release, fmt, include_background_music=include_background_music, progress=progress):
            fh.write(chunk)
            total += len(chunk)
    return total


def export_filename(release: Release, fmt: str, include_background_music: bool) -> str:
    suffix = "+background-music" if include_background_music else ""
    return f"{release.dataset.name}-{release.name}{suffix}.{EXPORT_EXTENSIONS[fmt]}"


def release_export_request(
    release: Release, fmt: str, *, include_background_music: bool = False, user=None
) -> ReleaseExport:
    """Record a background export (labels.tasks.release_export_start queues it). Returns the job to poll."""
    _check_format(fmt)
    return ReleaseExport.objects.create(
        release=release,
        format=fmt,
        include_background_music=include_background_music,
        rows_total=release_row_count(release, include_background_music=include_background_music),
        created_by=user,
    )


def release_export_run(export_id: int) -> ReleaseExport:
    """Run a queued export (idempotent: a finished job is returned as is)."""
    job = ReleaseExport.objects.select_related("release", "release__dataset").get(pk=export_id)
    if job.status == ReleaseExport.DONE:
        return job
    ReleaseExport.objects.filter(pk=job.pk).update(status=ReleaseExport.RUNNING, rows_done=0, error="")

    def progress(n):
        ReleaseExport.objects.filter(pk=job.pk).update(rows_done=n)

    try:
        buf = io.BytesIO()
        for chunk in export_chunks(
            job.release, job.format, include_background_music=job.include_background_music, progress=progress
        ):
            buf.write(chunk)
        job.refresh_from_db()
        job.file.save(
            export_filename(job.release, job.format, job.include_background_music),
            ContentFile(buf.getvalue()),
            save=False,
        )
        job.status = ReleaseExport.DONE
        job.rows_done = job.rows_total
        job.finished_at = timezone.now()
        job.save(update_fields=["file", "status", "rows_done", "finished_at"])
    except Exception as exc:  # recorded for the person polling, then re-raised for the task's retry policy
        ReleaseExport.objects.filter(pk=job.pk).update(
            status=ReleaseExport.FAILED, error=str(exc)[:2000], finished_at=timezone.now()
        )
        raise
    return job


# -- import -------------------------------------------------------------------------------------------------


def release_import(dataset: Dataset, name: str, source, *, user=None, source_name: str | None = None) -> Release:
    """Import a VGGSounder-layout CSV (path or text file object) as an immutable release that keeps the file's
    row order. Clip ids are linked to the dataset's clips where they exist. All or nothing."""
    name = _check_name(dataset, name)
    if isinstance(source, (str, Path)):
        where = str(source)
        try:
            fh = open(source, newline="", encoding="utf-8")
        except OSError as exc:
            raise ImportFailed(f"{where}: cannot be read ({exc.strerror})") from None
        with fh:
            clips, rows = read_label_csv(fh, _class_names(), where=where)
    else:
        where = source_name or getattr(source, "name", None) or "upload"
        clips, rows = read_label_csv(source, _class_names(), where=where)
    if not rows:
        raise ImportFailed(f"{where}: no label rows; nothing was imported")
    clip_pk = dict(Clip.objects.filter(dataset=dataset).values_list("video_id", "id"))
    position = {vid: i for i, vid in enumerate(clips)}
    label_rows = [(position[vid], label, mod, ReleaseLabel.HUMAN, "") for vid, label, mod in rows]
    meta = np.array(list(clips.values()), dtype=bool).reshape(-1, 3)
    stats = release_stats(meta, label_rows, len(clips))
    linked = sum(1 for vid in clips if vid in clip_pk)
    source_counts = {"rows": len(rows), "clips": len(clips), "clips_linked_to_dataset": linked}
    return _store(
        dataset,
        name,
        Release.IMPORT,
        {},
        True,
        Path(where).name,
        source_counts,
        stats,
        user,
        [(vid, clip_pk.get(vid), m) for vid, m in clips.items()],
        label_rows,
    )


# -- re-queue ------------------------------------------------------------------------------------------------


def release_requeue_needs_annotation(release: Release):
    """Send the clips a release reported as "needs annotation" back to the queue as new batches."""
    ids = release.stats.get("needs_annotation_ids") or []
    clips = list(Clip.objects.filter(dataset=release.dataset, video_id__in=ids, is_gold=False))
    if not clips:
        return []
    return batches_create(release.dataset, clips=clips)


def release_get(dataset_name: str, name: str) -> Release:
    try:
        return Release.objects.select_related("dataset").get(dataset__name=dataset_name, name=name)
    except Release.DoesNotExist:
        raise NotFound(f"no release {name!r} in dataset {dataset_name!r}") from None
