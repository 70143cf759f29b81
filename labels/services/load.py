"""Loading a dataset's approved crowd answers and in-house expert annotations as `Votes` arrays, with the gold
standard and each annotator's quality, for merging (labels.services.create) and comparing merge methods."""

import io
import itertools
import json
import logging
import re
from array import array
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
from django.db import connection, transaction
from django.db.models import Q
from django.db.models.expressions import RawSQL
from psycopg.adapt import Loader

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

# the ticked entries of an answer's label list (crowd migration 0007 keeps them in a generated column on PostgreSQL)
TICKED_PATH = '$[*] ? (@.type() == "object" && (@.audible == true || @.visible == true))'


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


def _stream(sql: str, params, size: int = 20000):
    """Rows of one query, fetched `size` at a time (a server-side cursor on PostgreSQL: memory stays flat)."""
    with connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(size):
            yield from rows


class _BytesLoader(Loader):
    """Text values as bytes (UTF-8, the connection's encoding): a CSV of a million rows read without a str copy."""

    def load(self, data) -> bytes:
        return bytes(data)


def _query_csv(sql: str, params) -> io.BytesIO:
    """The rows of `sql` as CSV (UTF-8 bytes), built by PostgreSQL as one value (each row's record text without its
    parentheses, one per line): one round trip and no Python per row (a COPY is read row by row, ~1.8 M reads for
    a 10× release). Read as bytes, not str: a StringIO holds 4 bytes per character. For rows of numbers and of
    quoted or plain text without backslashes. JIT compilation is off for it: the planner guesses 100 rows per JSON
    array element function, so these one-pass scans look huge and JIT would spend ~1.4 s compiling them."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('jit'), set_config('jit', 'off', false)")
        previous = cursor.fetchone()[0]
        try:
            cursor.cursor.adapters.register_loader("text", _BytesLoader)  # this cursor's text values as bytes
            cursor.execute(f"SELECT string_agg(btrim(q::text, '()'), E'\\n') FROM ({sql}) q", params)
            text = cursor.fetchone()[0]
        finally:
            cursor.execute("SELECT set_config('jit', %s, false)", [previous])
    return io.BytesIO(text or b"")


def _query_columns(sql: str, params, names: list[str], dtypes: dict) -> dict[str, np.ndarray]:
    """The rows of one query as numpy columns, read as one CSV text (no Python object per row or per value:
    460k answers + 1.2M ticks at 150k clips). Every column must be a number."""
    buf = _query_csv(sql, params)
    if not buf.getvalue():
        return {n: np.zeros(0, dtype=dtypes[n]) for n in names}
    frame = pd.read_csv(buf, header=None, names=names, dtype=dtypes, engine="c", na_filter=False)
    return {n: frame[n].to_numpy() for n in names}


def _index_of(keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Position of each value in `keys` (distinct, any order), -1 where absent."""
    if not len(keys):
        return np.full(len(values), -1, dtype=np.int64)
    order = np.argsort(keys, kind="stable")
    pos = np.searchsorted(keys[order], values)
    pos_c = np.minimum(pos, len(keys) - 1)
    found = keys[order][pos_c] == values
    return np.where(found, order[pos_c], -1).astype(np.int64)


def _with_crowd(crowd_part, rest: list, dtype) -> np.ndarray:
    """The crowd's arrays (PostgreSQL bulk path, or None) followed by the list-built annotations."""
    rest = np.asarray(rest, dtype=dtype)
    return rest if crowd_part is None else np.concatenate([crowd_part.astype(dtype, copy=False), rest])


@dataclass
class _CrowdArrays:
    """The kept crowd annotations (one per worker and clip, the later submission) as arrays, PostgreSQL only."""

    ann_clip: np.ndarray
    ann_answer: np.ndarray
    ann_assignment: np.ndarray
    ann_meta: np.ndarray
    worker_keys: list  # in slot order (first appearance in submission order)
    worker_quality: list
    ann_worker: np.ndarray
    n_dropped: int


def _crowd_answers_pg(answers_qs, assignments: list, clip_pks: list) -> _CrowdArrays:
    """The approved answers of `answers_qs` as arrays: one query, no model instance or tuple per answer. Same
    result as the generic path of votes_load (tests/releases/test_votes_load_bulk.py compares them)."""
    sql, params = (
        answers_qs.order_by()
        .values_list("assignment_id", "id", "clip_id", "background_music", "voice_over", "static_image")
        .query.sql_with_params()
    )
    cols = _query_columns(
        "SELECT q.assignment_id, q.id, q.clip_id, COALESCE(q.background_music, false)::int, "
        f"COALESCE(q.voice_over, false)::int, COALESCE(q.static_image, false)::int FROM ({sql}) q",
        list(params),
        ["assignment", "answer", "clip", "bm", "vo", "si"],
        {"assignment": np.int64, "answer": np.int64, "clip": np.int64, "bm": np.int8, "vo": np.int8, "si": np.int8},
    )
    clip = _index_of(np.asarray(clip_pks, dtype=np.int64), cols["clip"])
    keep = clip >= 0  # an answer about a clip of another dataset (not expected) is left out, as before
    # submission order: the assignments come sorted by (submitted_at, id); answers within one by id
    a_ids = np.array([a for a, *_x in assignments], dtype=np.int64)
    rank = _index_of(a_ids, cols["assignment"])
    keep &= rank >= 0
    idx = np.flatnonzero(keep)
    idx = idx[np.lexsort((cols["answer"][idx], rank[idx]))]
    rank, clip = rank[idx], clip[idx]
    # one integer per worker key ("worker", id) / ("worker", "assignment-<id>") of each assignment
    key_of_assignment, keys = [], {}
    for a_id, w_id, _f1, _b in assignments:
        key = ("worker", w_id if w_id is not None else f"assignment-{a_id}")
        key_of_assignment.append(keys.setdefault(key, len(keys)))
    key_list = list(keys)
    wkey = np.asarray(key_of_assignment, dtype=np.int64)[rank] if len(rank) else np.zeros(0, np.int64)
    # one vote per (worker, clip): the last in submission order wins (a stable sort keeps that order per pair)
    pair = wkey * max(len(clip_pks), 1) + clip
    by_pair = np.argsort(pair, kind="stable")
    sp = pair[by_pair]
    last = np.ones(len(sp), dtype=bool)
    last[:-1] = sp[1:] != sp[:-1]
    kept = np.sort(by_pair[last])
    n_dropped = int(len(pair) - len(kept))
    wkey_kept = wkey[kept]
    # annotator slots in order of first appearance among the kept annotations, as the generic path numbers them
    uniq, first = np.unique(wkey_kept, return_index=True)
    slot_order = np.argsort(first, kind="stable")
    slot_of_key = np.full(len(key_list), -1, dtype=np.int64)
    slot_of_key[uniq[slot_order]] = np.arange(len(uniq))
    f1_of_assignment = [f1 for _a, _w, f1, _b in assignments]
    first_rank = rank[kept][first[slot_order]]
    worker_keys = [key_list[int(k)] for k in uniq[slot_order]]
    worker_quality = [f1_of_assignment[int(r)] for r in first_rank]
    rows = idx[kept]
    meta = np.stack([cols["bm"][rows], cols["vo"][rows], cols["si"][rows]], axis=1).astype(bool)
    return _CrowdArrays(
        ann_clip=clip[kept],
        ann_answer=cols["answer"][rows],
        ann_assignment=cols["assignment"][rows],
        ann_meta=meta,
        worker_keys=worker_keys,
        worker_quality=worker_quality,
        ann_worker=slot_of_key[wkey_kept],
        n_dropped=n_dropped,
    )


def _crowd_ticks_pg(answers_qs, class_names: list[str]) -> tuple[dict, str, list]:
    """(answer id, position, class index, audible, visible) of every ticked label of the answers, by one query. It
    reads the answers' `ticked` column (PostgreSQL keeps it as the ticked entries of `labels`, crowd migration 0007),
    not the full label lists (~2 KB of JSON per answer, 0.9 GB at 150k clips); PostgreSQL looks the names up in the
    class list. Names not in it come with class index -1 (see _count_unknown_ticks). Returns the columns and the
    query of the ticked entries (for _count_unknown_ticks)."""
    table = ClipAnswer._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = %s "
            "AND column_name = 'ticked'",
            [table],
        )
        has_column = cursor.fetchone() is not None
    # The column is an array for every row (empty when `labels` is not one): reading it must not touch `labels`,
    # whose 0.9 GB of JSON at 150k clips would be decompressed by any test of it. Without the column (a schema not
    # built by the migrations): the same entries filtered from the label lists.
    entries = (
        f"{table}.ticked"
        if has_column
        else f"CASE WHEN jsonb_typeof({table}.labels) = 'array' THEN "
        f"jsonb_path_query_array({table}.labels, '{TICKED_PATH}') END"
    )
    sql, params = (
        answers_qs.order_by()
        .annotate(ticked_entries=RawSQL(entries, []))
        .values_list("id", "ticked_entries")
        .query.sql_with_params()
    )
    ticked = (
        "SELECT ca.id AS answer, e.e, e.i FROM ({sql}) ca "
        "CROSS JOIN LATERAL jsonb_array_elements(COALESCE(ca.ticked_entries, '[]'::jsonb)) WITH ORDINALITY e(e, i)"
    ).format(sql=sql)
    lookup = json.dumps({name: i for i, name in enumerate(class_names)})  # a JSON object: no join per tick
    cols = _query_columns(
        "SELECT t.answer, t.i, COALESCE((%s::jsonb ->> (t.e->>'name'))::int, -1), "
        f"((t.e->'audible') = 'true'::jsonb)::int, ((t.e->'visible') = 'true'::jsonb)::int FROM ({ticked}) t",
        [lookup, *params],
        ["answer", "i", "cls", "aud", "vis"],
        {"answer": np.int64, "i": np.int32, "cls": np.int32, "aud": np.int8, "vis": np.int8},
    )
    return cols, ticked, list(params)


def _count_unknown_ticks(cols: dict, ticked: str, params: list, class_names, kept_answers, unknown_classes) -> dict:
    """The ticks of `cols` (from _crowd_ticks_pg) whose name is a class; the others' names counted into
    `unknown_classes` for the kept answers (rare: a second pass over the ticked entries only)."""
    if not (cols["cls"] < 0).any():
        return cols
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT t.answer, t.e->>'name' FROM ({ticked}) t WHERE NOT (t.e->>'name' IS NOT NULL AND "
            "t.e->>'name' = ANY(%s::text[]))",
            [*params, list(class_names)],
        )
        kept = set(kept_answers.tolist())
        for answer, name in cursor.fetchall():
            if answer in kept:
                unknown_classes[name] = unknown_classes.get(name, 0) + 1
    ok = cols["cls"] >= 0
    return {k: v[ok] for k, v in cols.items()}


_NAME_SEPARATOR = "\x1f"  # between a clip's proposal names in the bulk read (a name containing it is left out)


def _json_literal(name: str) -> bool:
    """True when `name` is also the text of a JSON number, boolean, null, array or object (then a non-string
    proposal entry could read as that class name)."""
    try:
        return not isinstance(json.loads(name), str)
    except ValueError:
        return False


def _proposals_pg(dataset: Dataset, class_names: list[str], clip_pks: list) -> tuple[np.ndarray, np.ndarray]:
    """(clip index, class index) of the proposals shown for each clip (its first batch item), by one query, one
    row per clip: its proposal names joined by a separator. Python looks the names up (a dict lookup per name, 4.6 M
    at 150k clips, ~1 s); PostgreSQL's own lookup in a JSON object of the class list cost ~2 s more of database CPU.
    Entries that are not strings are no proposal: PostgreSQL reads every entry as text, which can only be mistaken
    for a class name when a class is named like a JSON number, boolean, null, array or object; for such a taxonomy
    the entries' types are checked as well (slower). The pairs come in no particular order: they are a set of atoms
    (labels.core.votes)."""
    if any(_json_literal(name) for name in class_names):
        entries = (
            "SELECT p.name #>> '{}' FROM jsonb_array_elements(CASE WHEN jsonb_typeof(bi.proposals) = 'array' "
            "THEN bi.proposals ELSE '[]'::jsonb END) p(name) WHERE jsonb_typeof(p.name) = 'string'"
        )
    else:
        entries = (
            "SELECT p.name FROM jsonb_array_elements_text(CASE WHEN jsonb_typeof(bi.proposals) = 'array' "
            "THEN bi.proposals ELSE '[]'::jsonb END) p(name)"
        )
    sql = (
        f"SELECT bi.clip_id, (SELECT string_agg(e.name, %s) FROM ({entries}) e(name) WHERE strpos(e.name, %s) = 0) "
        "FROM annotation_batchitem bi JOIN annotation_clip cl ON cl.id = bi.clip_id WHERE cl.dataset_id = %s "
        # a clip shown in several batches: the proposals of its first batch item (the lowest id)
        "AND NOT EXISTS (SELECT 1 FROM annotation_batchitem b2 WHERE b2.clip_id = bi.clip_id AND b2.id < bi.id)"
    )
    index_of_pk = np.asarray(clip_pks, dtype=np.int64)
    lookup = {name: i for i, name in enumerate(class_names)}
    out_clip, out_cls = [np.zeros(0, np.int32)], [np.zeros(0, np.int32)]
    with connection.chunked_cursor() as cursor:  # a block of rows at a time: the names of ~8k clips as strings
        cursor.execute(sql, [_NAME_SEPARATOR, _NAME_SEPARATOR, dataset.pk])
        while rows := cursor.fetchmany(8192):
            texts = [t or "" for _pk, t in rows]
            counts = np.fromiter((t.count(_NAME_SEPARATOR) + 1 if t else 0 for t in texts), np.int64, len(texts))
            names = _NAME_SEPARATOR.join(t for t in texts if t).split(_NAME_SEPARATOR) if counts.any() else []
            cls = np.fromiter(map(lookup.get, names, itertools.repeat(-1)), dtype=np.int32, count=len(names))
            clip = _index_of(index_of_pk, np.fromiter((pk for pk, _t in rows), np.int64, len(rows)))
            clip = np.repeat(clip.astype(np.int32), counts)
            known = cls >= 0  # not a class of the taxonomy: no proposal, as in the row-by-row read
            out_clip.append(clip[known])
            out_cls.append(cls[known])
    return np.concatenate(out_clip), np.concatenate(out_cls)  # int32, as Votes keeps them


LOAD_CONNECTIONS = 3
"""Connections of a bulk vote load on PostgreSQL: answers, ticks and proposals are read at the same time, each
query on its own connection (PostgreSQL runs each in a process of its own, so two cores halve the load)."""

_SNAPSHOT_ID = re.compile(r"^[0-9A-F]+-[0-9A-F]+(-[0-9]+)?$")


@contextmanager
def _beside(bulk: bool):
    """A function `beside(func, *args)` that starts `func(*args)` and returns a future of its result. Where it can, it
    runs on a thread with a connection of its own that reads the same snapshot as this one: this connection reads in
    a repeatable-read, read-only transaction whose snapshot the others import (pg_export_snapshot), so the three
    reads see one state of the database, as one query would (answers approved meanwhile are in all or none).
    Elsewhere (another database, LOAD_CONNECTIONS 1, or a caller already in a transaction, whose uncommitted rows
    other connections cannot see) it runs `func` at once on this connection."""
    if not bulk or LOAD_CONNECTIONS < 2 or connection.vendor != "postgresql" or connection.in_atomic_block:

        def now(func, *args):
            done: Future = Future()
            done.set_result(func(*args))
            return done

        yield now
        return
    with transaction.atomic(), ThreadPoolExecutor(LOAD_CONNECTIONS - 1, thread_name_prefix="votes-load") as pool:
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cursor.execute("SELECT pg_export_snapshot()")
            snapshot = cursor.fetchone()[0]
        if not _SNAPSHOT_ID.match(snapshot):  # it is written into SET TRANSACTION SNAPSHOT below
            raise RuntimeError(f"unexpected snapshot id {snapshot!r}")

        def on_snapshot(func, *args):
            try:
                with transaction.atomic(), connection.cursor() as cursor:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    cursor.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
                    return func(*args)
            finally:
                connection.close()  # this thread's own connection

        futures: list[Future] = []

        def beside(func, *args):
            futures.append(pool.submit(on_snapshot, func, *args))
            return futures[-1]

        try:
            yield beside
        finally:
            wait(futures)  # the snapshot's transaction stays open until every import of it has read


def votes_load(
    dataset: Dataset, *, include_experts: bool = True, with_proposals: bool = True, bulk: bool | None = None
) -> LoadedVotes:
    """Approved, verified crowd answers (+ in-house expert annotations) of a dataset as `Votes`, one vote per
    (worker, clip) (the later submission).

    Annotator quality: a crowd worker's stored mean catch F1; when it has none (or for in-house experts) the
    catch F1 computed here against the gold labels of the gold clips it answered (pooled per assignment,
    averaged per annotator, as catch scoring does).

    bulk: read the crowd's answers, ticks and proposals as one CSV text per query into arrays (PostgreSQL; the
    default there), or row by row in Python (every database; `bulk=False` forces it, for comparing the two).
    """
    bulk = connection.vendor == "postgresql" if bulk is None else bulk
    if bulk and connection.vendor != "postgresql":
        raise ValueError("votes_load(bulk=True) needs PostgreSQL")
    analyze_if_stale(Batch, Assignment, ClipAnswer, BatchItem)  # fresh bulk-written rows: plan with statistics
    with _beside(bulk) as beside:
        return _votes_load(dataset, include_experts, with_proposals, bulk, beside)


def _votes_load(dataset: Dataset, include_experts: bool, with_proposals: bool, bulk: bool, beside) -> LoadedVotes:
    class_names = taxonomy_class_names()
    class_index = taxonomy_class_index()
    clip_rows = list(Clip.objects.filter(dataset=dataset).order_by("video_id").values_list("id", "video_id", "is_gold"))
    clip_pks = [r[0] for r in clip_rows]
    clip_ids = [r[1] for r in clip_rows]
    clip_is_gold = np.array([r[2] for r in clip_rows], dtype=bool)
    del clip_rows
    clip_idx = {pk: i for i, pk in enumerate(clip_pks)}

    ann_clip, ann_worker, ann_group, meta_flat = [], [], [], []
    tick_ann, tick_class, tick_aud, tick_vis = [], [], [], []
    worker_slot: dict = {}
    stored_quality: list = []
    empty = np.zeros(0, dtype=np.int64)
    crowd = None  # PostgreSQL: the crowd's annotations as arrays (_CrowdArrays), before the list-built ones
    crowd_ticks = (empty, empty, empty.astype(bool), empty.astype(bool))  # PostgreSQL: the crowd's ticks as arrays
    unknown_classes: dict[str, int] = {}

    def add(clip_pk, worker_key, quality, group, bm, vo, si, labels):
        a = len(ann_clip) + (len(crowd.ann_clip) if crowd is not None else 0)
        ann_clip.append(clip_idx[clip_pk])
        slot = worker_slot.get(worker_key)
        if slot is None:
            slot = worker_slot[worker_key] = len(stored_quality)
            stored_quality.append(quality)
        ann_worker.append(slot)
        ann_group.append(group)
        meta_flat.extend((bool(bm), bool(vo), bool(si)))
        for lab in labels if isinstance(labels, list) else ():
            if not isinstance(lab, dict):  # not a label entry (hand-edited or imported data): no vote
                continue
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
    n_crowd = n_dropped = 0
    if bulk:
        # One vote per (worker, clip): when a worker answered a clip in two assignments (two HITs of an imported
        # results file), the later submission counts; the earlier answer is kept in the database but not loaded.
        # ticks and proposals each read on a connection of its own while this one reads the answers (see _beside)
        ticks_read = beside(_crowd_ticks_pg, answers, class_names)
        proposals_read = beside(_proposals_pg, dataset, class_names, clip_pks) if with_proposals else None
        crowd = _crowd_answers_pg(answers, assignments, clip_pks)
        n_crowd, n_dropped = len(crowd.ann_clip), crowd.n_dropped
        for key, quality in zip(crowd.worker_keys, crowd.worker_quality):
            worker_slot[key] = len(stored_quality)
            stored_quality.append(quality)
        # the ticks of every approved answer, joined to the kept annotations by answer id (an answer that lost to
        # a later one has no annotation and its ticks are dropped)
        ticks = _count_unknown_ticks(*ticks_read.result(), class_names, crowd.ann_answer, unknown_classes)
        pos = _index_of(crowd.ann_answer, ticks["answer"])
        hit = np.flatnonzero(pos >= 0)
        hit = hit[np.lexsort((ticks["i"][hit], pos[hit]))]  # annotation order, then the order of its label list
        crowd_ticks = (pos[hit], ticks["cls"][hit], ticks["aud"][hit].astype(bool), ticks["vis"][hit].astype(bool))
        del ticks, pos, hit
    else:
        answers = answers.order_by("assignment__submitted_at", "assignment_id", "id").values_list(
            "assignment_id", "id", "clip_id", "background_music", "voice_over", "static_image", "labels"
        )
        # One vote per (worker, clip): when a worker answered a clip in two assignments (two HITs of an imported
        # results file), the later submission counts; the earlier answer is kept in the database but not loaded.
        rows_kept, last_of = [], {}
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
            # the raw JSON text of the labels (the query bypasses the field's decoder)
            labels = json.loads(row[6]) if isinstance(row[6], str) else row[6]
            rows_kept.append((clip_pk, key, f1, assignment_id, bm, vo, si, labels if isinstance(labels, list) else ()))
        for i in sorted(last_of.values()):
            add(*rows_kept[i])
            n_crowd += 1
        del rows_kept, last_of
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
    if with_proposals and (ann_clip or crowd is not None and len(crowd.ann_clip)):
        if bulk:
            cand_clip, cand_class = proposals_read.result()
        else:
            seen = set()  # a clip shown in several batches: the proposals of its first batch item
            for clip_pk, proposals in (
                BatchItem.objects.filter(clip__dataset=dataset)
                .order_by("id")
                .values_list("clip_id", "proposals")
                .iterator(chunk_size=5000)
            ):
                if clip_pk in seen:
                    continue
                seen.add(clip_pk)
                c = clip_idx[clip_pk]
                for name in proposals if isinstance(proposals, list) else ():
                    k = class_index.get(name) if isinstance(name, str) else None
                    if k is not None:
                        cand_clip.append(c)
                        cand_class.append(k)

    # group ids must be non-negative and distinct between assignments and experts
    groups = np.asarray(ann_group, dtype=np.int64)
    if crowd is not None:
        groups = np.concatenate([crowd.ann_assignment, groups])
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
        ann_clip=_with_crowd(crowd and crowd.ann_clip, ann_clip, np.int64),
        ann_worker=_with_crowd(crowd and crowd.ann_worker, ann_worker, np.int64),
        ann_meta=np.concatenate(
            [
                crowd.ann_meta if crowd is not None else np.zeros((0, 3), bool),
                np.asarray(meta_flat, bool).reshape(-1, 3),
            ]
        ),
        ann_group=groups,
        tick_ann=np.asarray(tick_ann, dtype=np.int64),
        tick_class=np.asarray(tick_class, dtype=np.int64),
        tick_audible=np.asarray(tick_aud, dtype=bool),
        tick_visible=np.asarray(tick_vis, dtype=bool),
        worker_quality=quality,
        cand_clip=np.asarray(cand_clip, dtype=np.int32),
        cand_class=np.asarray(cand_class, dtype=np.int32),
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
