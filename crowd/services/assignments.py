"""Assignments: binding a worker to a batch, autosaving answers, submitting, scoring and the dataset policy.

Every write runs in one transaction under a row lock on the assignment, so a save cannot slip in after a submit
and a submit sees every save that came before it.
"""

from __future__ import annotations

import json
import math
import time
from contextlib import suppress
from datetime import timedelta
from functools import lru_cache

from django.conf import settings
from django.core import signing
from django.db import (
    DEFAULT_DB_ALIAS,
    IntegrityError,
    InterfaceError,
    OperationalError,
    connection,
    connections,
    transaction,
)
from django.db.models import Avg, Count
from django.utils import timezone

from catalog.core.vocabulary import META_LABELS, catch_answers, catch_result
from catalog.errors import Forbidden, NotFound, TryAgain, ValidationError
from catalog.observability import count_answer_save
from catalog.selectors.gold import gold_labels
from catalog.selectors.taxonomy import class_index
from crowd.core.scoring import decide, should_block
from crowd.models import (
    Assignment,
    AssignmentDecisionLog,
    Batch,
    BatchItem,
    ClipAnswer,
    Hit,
    Worker,
    WorkerStatusLog,
)
from crowd.selectors.crowd import batch_clip_ids, parse_uuid
from crowd.services.batches import ACTIVE_STATUSES, batch_refresh_status
from crowd.services.progress import status_change_shift
from crowd.services.workers import worker_status_record

HIT_TOKEN_SALT = "avcrowd.hit-token"
HIT_TOKEN_MAX_AGE = 30 * 24 * 3600
BACKENDS = {b for b, _ in Worker.BACKENDS}
ANSWER_KEYS = META_LABELS + ("played", "watch_seconds", "labels", "comment", "media_failed")
_ANSWER_KEY_SET = frozenset(ANSWER_KEYS)
MAX_COMMENT = 2000
MAX_WATCH_SECONDS = 24 * 3600
UNVERIFIED_REASON = (
    "submitted, unverified: waiting for the marketplace to report this assignment for this worker (next sync); "
    "until then it is not approved, paid or merged"
)


# --- tokens ----------------------------------------------------------------------------------------------
def hit_token(assignment: Assignment) -> str:
    """Signed token binding the assignment to its worker and to the browser secret it was bound with (sent back
    by the page as X-HIT-Token); a token issued before the binding (or for another secret) is refused."""
    return signing.dumps(
        {"a": str(assignment.uuid), "w": assignment.worker_id, "k": assignment.browser_secret_hash[:16]},
        salt=HIT_TOKEN_SALT,
    )


def hit_token_check(token: str | None, assignment: Assignment) -> None:
    _token_check(token, str(assignment.uuid), assignment.worker_id, assignment.browser_secret_hash)


# The HIT page sends the same token with every autosave: a process remembers the tokens whose signature it has
# verified (with the signing keys they were verified with) and their time of signing, and checks only their age
# again. Bounded: emptied when full.
_VERIFIED_TOKENS: dict[tuple, tuple[object, int]] = {}
_VERIFIED_TOKENS_MAX = 20_000


def _token_data(token: str):
    """signing.loads(token, salt=HIT_TOKEN_SALT, max_age=HIT_TOKEN_MAX_AGE), with the same errors; the signature of
    a token is verified once per process (a valid signature stays valid), its age on every call."""
    key = (token, settings.SECRET_KEY, tuple(settings.SECRET_KEY_FALLBACKS))
    known = _VERIFIED_TOKENS.get(key)
    if known is None:
        data = signing.loads(token, salt=HIT_TOKEN_SALT, max_age=HIT_TOKEN_MAX_AGE)
        # verified: "<payload>:<time signed, base62>:<signature>" (signing.TimestampSigner)
        signed_at = signing.b62_decode(token.rsplit(":", 2)[1])
        if len(_VERIFIED_TOKENS) >= _VERIFIED_TOKENS_MAX:
            _VERIFIED_TOKENS.clear()
        _VERIFIED_TOKENS[key] = (data, signed_at)
        return data
    data, signed_at = known
    if time.time() - signed_at > HIT_TOKEN_MAX_AGE:  # TimestampSigner.unsign's test
        raise signing.SignatureExpired(f"Signature age {time.time() - signed_at} > {HIT_TOKEN_MAX_AGE} seconds")
    return data


def _token_check(token: str | None, assignment_uuid: str, worker_id, secret_hash: str = "") -> None:
    if not token:
        raise Forbidden("missing X-HIT-Token header: reload the HIT page to get a session token", field="X-HIT-Token")
    try:
        data = _token_data(token)
    except signing.SignatureExpired:
        raise Forbidden("the session token has expired: reload the HIT page", field="X-HIT-Token")
    except signing.BadSignature:
        raise Forbidden("the session token is not valid: reload the HIT page", field="X-HIT-Token")
    if not isinstance(data, dict) or data.get("a") != assignment_uuid or data.get("w") != worker_id:
        raise Forbidden("this session token belongs to another assignment or worker", field="X-HIT-Token")
    if data.get("k", "") != secret_hash[:16]:
        raise Forbidden(
            "this session token was issued before the assignment was bound to its browser: reload the HIT page",
            field="X-HIT-Token",
        )


# --- payload validation (pure) ---------------------------------------------------------------------------
def _bool_or_none(payload: dict, key: str):
    value = payload.get(key)
    if value is not None and not isinstance(value, bool):
        raise ValidationError(f"field {key!r} is {value!r}; allowed: true, false or null", field=key)
    return value


_LABEL_KEYS = frozenset({"name", "audible", "visible"})


def clean_labels(labels, classes: dict[str, int], field: str = "labels") -> list[dict]:
    """The ticked classes of one answer, checked and in logit order. The HIT page sends every proposal it showed
    (~30 on every autosave), so the checks build no message unless one fails."""
    if not isinstance(labels, list):
        raise ValidationError(f'field {field!r} must be a list of {{"name", "audible", "visible"}}', field=field)
    out, seen = [], set()
    for i, item in enumerate(labels):
        if not isinstance(item, dict):
            raise ValidationError(f'{field}[{i}] must be an object {{"name", "audible", "visible"}}', field=field)
        if not item.keys() <= _LABEL_KEYS:
            extra = ", ".join(sorted(set(item) - _LABEL_KEYS))
            raise ValidationError(
                f"{field}[{i}] has unknown key(s) {extra}; allowed: name, audible, visible", field=field
            )
        name = item.get("name")
        if not isinstance(name, str) or name not in classes:
            raise ValidationError(
                f"{field}[{i}].name is {name!r}: not a class of the taxonomy",
                field=field,
                details={"index": i, "name": name},
            )
        if name in seen:
            raise ValidationError(
                f"{field}[{i}].name {name!r} appears twice", field=field, details={"index": i, "name": name}
            )
        seen.add(name)
        audible, visible = item.get("audible", False), item.get("visible", False)
        if type(audible) is not bool or type(visible) is not bool:
            key, value = ("audible", audible) if type(audible) is not bool else ("visible", visible)
            raise ValidationError(
                f"{field}[{i}].{key} is {value!r}; allowed: true or false",
                field=field,
                details={"index": i, "name": name},
            )
        out.append({"name": name, "audible": audible, "visible": visible})
    out.sort(key=lambda lab: classes[lab["name"]])
    return out


def clean_answer_payload(payload) -> dict:
    """Validate an autosave body; missing keys take their empty value. Raises ValidationError naming the field."""
    if not isinstance(payload, dict):
        raise ValidationError("the body must be a JSON object with keys " + ", ".join(ANSWER_KEYS), field="body")
    if not payload.keys() <= _ANSWER_KEY_SET:
        extra = sorted(set(payload) - _ANSWER_KEY_SET)
        raise ValidationError(f"unknown field(s) {', '.join(extra)}; allowed: {', '.join(ANSWER_KEYS)}", field=extra[0])
    clean = {key: _bool_or_none(payload, key) for key in META_LABELS}
    played = payload.get("played", False)
    if not isinstance(played, bool):
        raise ValidationError(f"field 'played' is {played!r}; allowed: true or false", field="played")
    clean["played"] = played
    failed = payload.get("media_failed", False)
    if not isinstance(failed, bool):
        raise ValidationError(
            f"field 'media_failed' is {failed!r}; allowed: true (the clip does not load or play) or false",
            field="media_failed",
        )
    clean["media_failed"] = failed
    watch = payload.get("watch_seconds", 0)
    if (
        isinstance(watch, bool)
        or not isinstance(watch, (int, float))
        or not math.isfinite(watch)
        or not 0 <= watch <= MAX_WATCH_SECONDS
    ):
        raise ValidationError(
            f"field 'watch_seconds' is {watch!r}; allowed: a number of seconds from 0 to {MAX_WATCH_SECONDS}",
            field="watch_seconds",
        )
    clean["watch_seconds"] = float(watch)
    clean["labels"] = clean_labels(payload.get("labels", []), class_index())
    comment = payload.get("comment", "")
    if comment is None:
        comment = ""
    if not isinstance(comment, str) or len(comment) > MAX_COMMENT:
        raise ValidationError(f"field 'comment' must be text of at most {MAX_COMMENT} characters", field="comment")
    clean["comment"] = comment
    return clean


# --- binding ----------------------------------------------------------------------------------------------
EXPIRING_BACKENDS = ("mturk", "prolific")  # in-house annotators are accounts: their work does not expire


def assignment_expiry(batch: Batch, backend: str, now=None):
    """When a new in-progress assignment of `batch` expires: its HIT's assignment duration (the latest HIT of
    the batch), else settings.HIT_ASSIGNMENT_SECONDS; None for in-house and simulated work."""
    if backend not in EXPIRING_BACKENDS:
        return None
    duration = (
        Hit.objects.filter(batch=batch).order_by("-created_at").values_list("assignment_duration_seconds", flat=True)
    ).first() or settings.HIT_ASSIGNMENT_SECONDS
    return (now or timezone.now()) + timedelta(seconds=duration)


def _worker_get_or_create(backend: str, external_id: str, user) -> Worker:
    worker = Worker.objects.filter(backend=backend, external_id=external_id).first()
    if worker is None:
        try:
            with transaction.atomic():
                worker = Worker.objects.create(backend=backend, external_id=external_id, user=user)
        except IntegrityError:  # created concurrently by another request of the same worker
            worker = Worker.objects.get(backend=backend, external_id=external_id)
    return worker


def assignment_start(
    batch: Batch,
    *,
    backend: str,
    worker_external_id: str,
    external_assignment_id: str = "",
    hit_id: str = "",
    turk_submit_to: str = "",
    user=None,
    rebind: bool = True,
) -> Assignment:
    """Bind the worker to the batch (idempotent: the same worker and batch give the same assignment). For the
    marketplace's own reports (sync, results import); the HIT API goes through `binding.assignment_open`, which
    proves who is asking first (`rebind=False`: an existing assignment's marketplace ids never change here).

    Refused (Forbidden) for a blocked worker, a worker who already had a clip of this batch in another batch,
    an external assignment id bound to another worker, and a batch that already has all its annotators."""
    if backend not in BACKENDS:
        raise ValidationError(
            f"backend {backend!r} is not allowed; allowed: {', '.join(sorted(BACKENDS))}", field="backend"
        )
    worker_external_id = (worker_external_id or "").strip()
    if not worker_external_id or len(worker_external_id) > 200:
        raise ValidationError("a worker id (1-200 characters) is required", field="workerId")
    worker = _worker_get_or_create(backend, worker_external_id, user)
    with transaction.atomic():
        worker = Worker.objects.select_for_update().get(pk=worker.pk)
        if user is not None and worker.user_id is None:
            worker.user = user
            worker.save(update_fields=["user"])
        existing = Assignment.objects.filter(batch=batch, worker=worker).first()
        if existing is not None:
            changed = []
            if existing.status == Assignment.IN_PROGRESS and rebind:
                for attr, value in (
                    ("external_assignment_id", external_assignment_id),
                    ("external_hit_id", hit_id),
                    ("turk_submit_to", turk_submit_to),
                ):
                    if value and getattr(existing, attr) != value:
                        setattr(existing, attr, value)
                        changed.append(attr)
            if changed:
                if (
                    "external_assignment_id" in changed
                    and Assignment.objects.filter(backend=backend, external_assignment_id=external_assignment_id)
                    .exclude(pk=existing.pk)
                    .exists()
                ):
                    raise Forbidden("this marketplace assignment is already bound to another worker")
                existing.save(update_fields=changed)
            return existing
        if worker.is_blocked:
            raise Forbidden(
                "You can no longer work on these tasks: your answers on the quality-control clips "
                "were below the required level. Please return the task."
            )
        if (
            external_assignment_id
            and Assignment.objects.filter(backend=backend, external_assignment_id=external_assignment_id).exists()
        ):
            raise Forbidden("this marketplace assignment is already bound to another worker")
        clip_ids = list(batch_clip_ids(batch.pk).values())
        if BatchItem.objects.filter(batch__assignments__worker=worker, clip_id__in=clip_ids).exists():
            raise Forbidden(
                "You have already worked on a video of this task, and each video needs different "
                "people. Please return this task and pick another one."
            )
        batch = Batch.objects.select_for_update().select_related("dataset").get(pk=batch.pk)
        active = batch.assignments.filter(status__in=ACTIVE_STATUSES).count()
        if active >= batch.wanted:
            raise Forbidden("This task already has all the annotators it needs. Please return it and pick another one.")
        assignment = Assignment.objects.create(
            batch=batch,
            worker=worker,
            backend=backend,
            external_assignment_id=external_assignment_id,
            external_hit_id=hit_id,
            turk_submit_to=turk_submit_to,
            expires_at=assignment_expiry(batch, backend),
        )
        batch_refresh_status(batch)
    return assignment


# --- autosave ----------------------------------------------------------------------------------------------
def _locked_status(assignment: Assignment) -> str:
    return Assignment.objects.select_for_update().filter(pk=assignment.pk).values_list("status", flat=True).get()


def _refuse_unless_in_progress(status: str) -> None:
    if status != Assignment.IN_PROGRESS:
        raise Forbidden(
            f"this assignment was already {status.replace('_', ' ')}; answers can no longer change", field="status"
        )


# the answer's columns in the order of both upserts' parameters, after assignment_id
_ANSWER_COLUMNS = (
    "clip_id",
    "background_music",
    "voice_over",
    "static_image",
    "played",
    "watch_seconds",
    "labels",
    "comment",
    "media_failed",
    "updated_at",
)


def _on_conflict_sql(vendor: str) -> str:
    """An upsert's update of an existing (assignment, clip) row: `played` stays true, watch time only grows."""
    t = ClipAnswer._meta.db_table
    greatest = "GREATEST" if vendor == "postgresql" else "MAX"
    return (
        f"ON CONFLICT (assignment_id, clip_id) DO UPDATE SET "
        f"background_music = EXCLUDED.background_music, voice_over = EXCLUDED.voice_over, "
        f"static_image = EXCLUDED.static_image, played = ({t}.played OR EXCLUDED.played), "
        f"watch_seconds = {greatest}({t}.watch_seconds, EXCLUDED.watch_seconds), labels = EXCLUDED.labels, "
        f"comment = EXCLUDED.comment, media_failed = EXCLUDED.media_failed, updated_at = EXCLUDED.updated_at"
    )


def _answer_params(clip_id: int, clean: dict, now, db=connection) -> list:
    return [
        clip_id,
        clean["background_music"],
        clean["voice_over"],
        clean["static_image"],
        clean["played"],
        clean["watch_seconds"],
        json.dumps(clean["labels"]),
        clean["comment"],
        clean["media_failed"],
        now if db.vendor == "postgresql" else db.ops.adapt_datetimefield_value(now),
    ]


def _count_save(clean: dict) -> None:
    count_answer_save("media_failed" if clean["media_failed"] else "answer")


def _prepared_cursor(db, *, checked: bool = True):
    """The cursor of the autosave's two statements on connection `db`: on PostgreSQL (config.db.postgresql)
    prepared once per connection instead of parsed and planned on every save, as bench/bare_saves_app.py's floor
    does, and with `checked=False` without the health check (see `_first_read`); elsewhere Django's cursor."""
    prepared = getattr(db, "prepared_cursor", None)
    return db.cursor() if prepared is None else prepared(checked=checked)


def _first_read(db, cursor, uuid_param):
    """The autosave's first read of the assignment; returns the cursor that ran it. On PostgreSQL the cursor comes
    without the health check (a look at the connection's socket before every save: a system call that lets go of
    the GIL, and 12,000 instructions; docs/benchmarks.md, "Autosave, fifth pass"): when the server closed the kept
    connection while it sat idle (a restart, pg_terminate_backend, an idle timeout), this read fails at once, and it
    runs again on a new connection, as the check would have replaced the connection before it. A read changes
    nothing, so running it again is safe; not inside a transaction, though: what that had done went with the
    connection, and the save fails."""
    try:
        cursor.execute(_READ_SQL, [uuid_param])
        return cursor
    except (OperationalError, InterfaceError):
        lost = getattr(db, "lost", None)  # config.db.postgresql's
        if db.in_atomic_block or lost is None or not lost():
            raise
    with suppress(db.Database.Error):
        cursor.close()
    db.close()
    cursor = _prepared_cursor(db)
    cursor.execute(_READ_SQL, [uuid_param])
    return cursor


def _upsert(assignment_pk: int, clip_id: int, clean: dict):
    """One statement: insert or update the (assignment, clip) row, unconditionally (the caller holds the
    assignment's lock)."""
    now = timezone.now()
    sql = (
        f"INSERT INTO {ClipAnswer._meta.db_table} (assignment_id, {', '.join(_ANSWER_COLUMNS)}) "
        f"VALUES ({', '.join(['%s'] * (1 + len(_ANSWER_COLUMNS)))}) {_on_conflict_sql(connection.vendor)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [assignment_pk, *_answer_params(clip_id, clean, now)])
    _count_save(clean)
    return now


def answer_save(assignment: Assignment, video_id: str, payload: dict) -> ClipAnswer:
    """Idempotent upsert of one clip's answer. `played` stays true once set; watch time only grows."""
    clean = clean_answer_payload(payload)
    clip_id = batch_clip_ids(assignment.batch_id).get(video_id)
    with transaction.atomic():
        _refuse_unless_in_progress(_locked_status(assignment))
        if clip_id is None:
            raise ValidationError(f"video {video_id!r} is not part of this batch", field="video_id")
        _upsert(assignment.pk, clip_id, clean)
    return ClipAnswer.objects.get(assignment_id=assignment.pk, clip_id=clip_id)


_UUID_FIELD = Assignment._meta.get_field("uuid")


_READ_SQL = (  # the autosave's read of an assignment by uuid (no lock: its write re-checks what it relies on)
    f"SELECT id, status, worker_id, batch_id, browser_secret_hash FROM {Assignment._meta.db_table} WHERE uuid = %s"
)


@lru_cache(maxsize=4)
def _save_sql(vendor: str, has_select_for_update: bool) -> str:
    """The autosave's write, one statement (so, in autocommit, its own transaction): lock the assignment row if it
    is still in progress and still held by the worker and browser binding the token was checked against, and
    upsert the answer only then (none written otherwise). A submit, a decision or a re-binding that commits first
    is seen by the lock (PostgreSQL re-reads a row it waited for), so no answer lands after any of them; one that
    comes second waits for the save. SQLite writes one statement at a time. On PostgreSQL the values are cast to
    their columns' types (a parameter in a SELECT list has no type of its own)."""
    t, a = ClipAnswer._meta.db_table, Assignment._meta.db_table
    same_worker = "IS NOT DISTINCT FROM" if vendor == "postgresql" else "IS"
    lock = " FOR UPDATE" if has_select_for_update else ""
    if vendor == "postgresql":
        fields = [ClipAnswer._meta.get_field(c.removesuffix("_id")) for c in _ANSWER_COLUMNS]
        values = [f"%s::{f.db_type(connection)}" for f in fields]
    else:
        values = ["%s"] * len(_ANSWER_COLUMNS)
    return (
        f"INSERT INTO {t} (assignment_id, {', '.join(_ANSWER_COLUMNS)}) SELECT a.id, {', '.join(values)} "
        f"FROM (SELECT id FROM {a} WHERE id = %s AND status = %s AND worker_id {same_worker} %s "
        f"AND browser_secret_hash = %s{lock}) a "
        f"WHERE true "  # SQLite: an INSERT ... SELECT with ON CONFLICT needs a WHERE (its parser's ambiguity)
        f"{_on_conflict_sql(vendor)}"
    )


_SAVE_TRIES = 3


def answer_save_with_token(
    assignment_uuid, token: str | None, video_id: str, payload, *, body_error: ValidationError | None = None
):
    """The HIT API's autosave: 404 unknown assignment, 403 wrong token or not in progress, 400 bad body or clip not
    in the batch (in that order). Returns the row's updated_at.

    Two statements, each its own transaction (no BEGIN/COMMIT round trips; inside a caller's transaction they are
    part of it): a read of the assignment, checked here, then one write that locks the assignment and upserts the
    answer only if what was checked still holds (`_save_sql`). When it no longer does (a submit, expiry or
    re-binding in between) the checks run again on a fresh read, so the refusal names the new state."""
    assignment_uuid = parse_uuid(assignment_uuid)
    if assignment_uuid is None:
        raise NotFound("not found")
    clean, invalid = None, body_error
    if invalid is None:
        try:
            clean = clean_answer_payload(payload)
        except ValidationError as exc:
            invalid = exc
    db = connections[DEFAULT_DB_ALIAS]  # this thread's connection, looked up once (not per use of the proxy)
    uuid_param = _UUID_FIELD.get_db_prep_value(assignment_uuid, db)
    save_sql = _save_sql(db.vendor, db.features.has_select_for_update)
    # SQL written once (the ORM's query compilation was ~0.5 ms of every save), one cursor for both statements
    cursor = _prepared_cursor(db, checked=False)
    try:
        for attempt in range(_SAVE_TRIES):
            if attempt:
                cursor.execute(_READ_SQL, [uuid_param])
            else:
                cursor = _first_read(db, cursor, uuid_param)
            row = cursor.fetchone()
            if row is None:
                raise NotFound("not found")
            pk, status, worker_id, batch_id, secret_hash = row
            _token_check(token, str(assignment_uuid), worker_id, secret_hash)
            _refuse_unless_in_progress(status)
            if invalid is not None:
                raise invalid
            clip_id = batch_clip_ids(batch_id).get(video_id)
            if clip_id is None:
                raise ValidationError(f"video {video_id!r} is not part of this batch", field="video_id")
            now = timezone.now()
            cursor.execute(
                save_sql, [*_answer_params(clip_id, clean, now, db), pk, Assignment.IN_PROGRESS, worker_id, secret_hash]
            )
            if cursor.rowcount == 1:  # else the assignment changed since the read: check again
                _count_save(clean)
                return now
    finally:
        with suppress(db.Database.Error):  # as Django's CursorWrapper.__exit__
            cursor.close()
    raise TryAgain("the assignment kept changing while this answer was being saved; nothing was saved: save again")


def assignment_set_position(assignment: Assignment, position) -> Assignment:
    if isinstance(position, bool) or not isinstance(position, int):
        raise ValidationError(f"field 'position' is {position!r}; allowed: an integer clip index", field="position")
    size = len(batch_clip_ids(assignment.batch_id))
    if not 0 <= position < max(size, 1):
        raise ValidationError(f"field 'position' is {position}; allowed: 0 to {size - 1}", field="position")
    with transaction.atomic():
        _refuse_unless_in_progress(_locked_status(assignment))
        Assignment.objects.filter(pk=assignment.pk).update(position=position)
    assignment.position = position
    return assignment


# --- submit, scoring, policy ------------------------------------------------------------------------------
def assignment_incomplete(assignment: Assignment) -> list[dict]:
    """[{"video_id", "missing": [...]}] for every clip not yet complete (played, three meta questions).
    A clip the worker reported as not loading or playing (media_failed) is complete."""
    answers = {a.clip_id: a for a in ClipAnswer.objects.filter(assignment=assignment)}
    out = []
    for item in BatchItem.objects.filter(batch_id=assignment.batch_id).select_related("clip").order_by("position"):
        answer = answers.get(item.clip_id)
        if answer is not None and answer.media_failed:
            continue
        missing = []
        if answer is None or not answer.played:
            missing.append("played")
        missing += [key for key in META_LABELS if answer is None or getattr(answer, key) is None]
        if missing:
            out.append({"video_id": item.clip.video_id, "position": item.position, "missing": missing})
    return out


def assignment_catch_data(assignment: Assignment):
    """(gold, answers) in the shape of `catch_scores`, over the assignment's catch clips."""
    items = list(
        BatchItem.objects.filter(batch_id=assignment.batch_id, is_gold=True).values_list("clip_id", "clip__video_id")
    )
    vid = dict(items)
    gold: dict[str, dict[str, str]] = {v: {} for v in vid.values()}
    gold.update(gold_labels(vid))
    rows = ClipAnswer.objects.filter(assignment=assignment, clip_id__in=vid).values_list(
        "clip_id", "labels", "media_failed"
    )
    return gold, catch_answers((vid[clip_id], labels, failed) for clip_id, labels, failed in rows)


def assignment_score(assignment: Assignment) -> Assignment:
    """Score the catch trials; leaves the scores None when the batch has no gold atoms to score against."""
    result = catch_result(*assignment_catch_data(assignment))
    if result is None:
        assignment.catch_f1 = assignment.catch_precision = assignment.catch_recall = None
    else:
        assignment.catch_f1, assignment.catch_precision, assignment.catch_recall = result[:3]
    Assignment.objects.filter(pk=assignment.pk).update(
        catch_f1=assignment.catch_f1, catch_precision=assignment.catch_precision, catch_recall=assignment.catch_recall
    )
    return assignment


def worker_update_stats(worker: Worker, dataset=None) -> Worker:
    """Mean catch-trial F1 over the worker's scored, submitted, verified assignments (work a stranger submitted
    under this worker's id never counts against them); block per the dataset policy."""
    agg = (
        Assignment.objects.verified()
        .filter(worker=worker, catch_f1__isnull=False)
        .exclude(status=Assignment.IN_PROGRESS)
        .aggregate(mean=Avg("catch_f1"), n=Count("id"))
    )
    worker = Worker.objects.select_for_update().get(pk=worker.pk)
    worker.mean_catch_f1, worker.n_scored = agg["mean"], agg["n"]
    fields = ["mean_catch_f1", "n_scored"]
    if (
        dataset is not None
        and not worker.is_blocked
        and should_block(
            worker.mean_catch_f1, worker.n_scored, block_floor=dataset.block_floor, block_after=dataset.block_after
        )
    ):
        worker.is_blocked = True
        worker.blocked_reason = (
            f"mean catch-trial F1 {worker.mean_catch_f1:.3f} after {worker.n_scored} scored "
            f"assignments is below the block floor {dataset.block_floor:.3f} "
            f"(dataset {dataset.name})"
        )
        fields += ["is_blocked", "blocked_reason"]
        worker_status_record(worker, WorkerStatusLog.BLOCKED, worker.blocked_reason)
    worker.save(update_fields=fields)
    return worker


def _set_status(assignment: Assignment, status: str, *, actor=None, reason: str = "", feedback: str | None = None):
    old = assignment.status
    assignment.status = status
    assignment.decided_at = timezone.now() if status in (Assignment.APPROVED, Assignment.REJECTED) else None
    assignment.decision_reason = reason
    fields = ["status", "decided_at", "decision_reason"]
    if feedback is not None:
        assignment.feedback = feedback
        fields.append("feedback")
    assignment.save(update_fields=fields)
    status_change_shift(assignment.pk, old, status)
    AssignmentDecisionLog.objects.create(
        assignment=assignment, actor=actor, old_status=old, new_status=status, reason=reason
    )
    batch_refresh_status(assignment.batch)


def assignment_submit(assignment: Assignment, *, work_seconds=None) -> Assignment:
    """Check completeness, mark submitted, score the catch trials and apply the dataset policy, atomically.

    Submitting an assignment that is no longer in progress returns it unchanged (harmless)."""
    if work_seconds is not None and (
        isinstance(work_seconds, bool)
        or not isinstance(work_seconds, (int, float))
        or not math.isfinite(work_seconds)
        or work_seconds < 0
    ):
        raise ValidationError(
            f"field 'work_seconds' is {work_seconds!r}; allowed: a number of seconds >= 0", field="work_seconds"
        )
    with transaction.atomic():
        a = (
            Assignment.objects.select_for_update(of=("self",))
            .select_related("batch__dataset", "worker")
            .get(pk=assignment.pk)
        )
        if a.status != Assignment.IN_PROGRESS:
            return a
        incomplete = assignment_incomplete(a)
        if incomplete:
            raise ValidationError(
                f"{len(incomplete)} clip(s) are not complete: every clip must be played and its "
                f"three questions answered",
                field="answers",
                details={"incomplete": incomplete},
            )
        now = timezone.now()
        a.status = Assignment.SUBMITTED
        a.submitted_at = now
        a.work_seconds = float(work_seconds) if work_seconds is not None else (now - a.started_at).total_seconds()
        a.save(update_fields=["status", "submitted_at", "work_seconds"])
        AssignmentDecisionLog.objects.create(
            assignment=a,
            old_status=Assignment.IN_PROGRESS,
            new_status=Assignment.SUBMITTED,
            reason="submitted by the worker",
        )
        assignment_apply_policy(a)
    return a


def assignment_apply_policy(a: Assignment) -> Assignment:
    """Score the catch trials; a submitted, verified assignment gets its dataset's policy (approve / reject / wait
    for the review window); an unverified one waits for the marketplace to confirm it (`assignment_verify`).
    Then the worker's mean F1 is updated, blocking below the floor. Live submissions, synced and imported
    marketplace results all go through here."""
    assignment_score(a)
    dataset = a.batch.dataset
    if a.status == Assignment.SUBMITTED and not a.is_verified:
        Assignment.objects.filter(pk=a.pk).update(decision_reason=UNVERIFIED_REASON)
        a.decision_reason = UNVERIFIED_REASON
    elif a.status == Assignment.SUBMITTED:
        decision = decide(
            a.catch_f1, reject_below=dataset.reject_below, review_window_hours=dataset.review_window_hours
        )
        if decision.status != Assignment.SUBMITTED:
            _set_status(a, decision.status, reason=decision.reason, feedback=decision.feedback)
        else:
            Assignment.objects.filter(pk=a.pk).update(decision_reason=decision.reason)
            a.decision_reason = decision.reason
    if a.worker_id:
        a.worker = worker_update_stats(a.worker, dataset)
    return a


def assignment_decide(
    assignment: Assignment, *, status: str, actor=None, reason: str = "", feedback: str = ""
) -> Assignment:
    """Approve or reject (also an admin override of an automatic decision), with an audit record.

    An override by a person (actor given) needs a reason. Rejecting frees the slot: the batch re-opens and its
    clips go back to the queue. Rejecting an in-progress assignment releases an abandoned one."""
    allowed = (Assignment.APPROVED, Assignment.REJECTED)
    if status not in allowed:
        raise ValidationError(f"status {status!r} is not allowed; allowed: {', '.join(allowed)}", field="status")
    if actor is not None and not (reason or "").strip():
        raise ValidationError("an override needs a reason (it is kept in the audit log)", field="reason")
    with transaction.atomic():
        a = Assignment.objects.select_for_update(of=("self",)).select_related("batch__dataset").get(pk=assignment.pk)
        if a.status == Assignment.IN_PROGRESS and status == Assignment.APPROVED:
            raise ValidationError(
                "this assignment was not submitted yet; it can only be rejected (released)", field="status"
            )
        if status == Assignment.APPROVED and not a.is_verified:
            raise ValidationError(
                f"this {a.backend} assignment is submitted but unverified: the marketplace has not reported it "
                "for this worker yet, so it cannot be approved (nor paid or merged); sync the marketplace first",
                field="status",
            )
        if a.status == status:
            return a
        if status == Assignment.REJECTED:
            feedback = feedback or a.feedback or "Your submission was rejected after review."
        _set_status(a, status, actor=actor, reason=reason or f"set to {status}", feedback=feedback)
    return a


def assignments_approve_due(now=None) -> int:
    """Approve submitted assignments whose dataset review window has passed (schedule this periodically)."""
    now = now or timezone.now()
    done = 0
    for a in Assignment.objects.verified().filter(status=Assignment.SUBMITTED).select_related("batch__dataset"):
        hours = a.batch.dataset.review_window_hours
        if a.submitted_at and a.submitted_at + timedelta(hours=hours) <= now:
            with transaction.atomic():
                locked = (
                    Assignment.objects.select_for_update(of=("self",)).select_related("batch__dataset").get(pk=a.pk)
                )
                if locked.status == Assignment.SUBMITTED:
                    _set_status(locked, Assignment.APPROVED, reason=f"approved after the {hours} h review window")
                    done += 1
    return done


def assignment_verify(assignment: Assignment, *, worker_external_id: str, source: str) -> Assignment:
    """The marketplace reported this assignment for `worker_external_id` (a sync saw the submission, or the
    requester's results file lists it): mark it verified and, when it waits submitted, decide it by the
    dataset policy. A report for another worker verifies nothing (ValidationError naming both ids)."""
    with transaction.atomic():
        a = (
            Assignment.objects.select_for_update(of=("self",))
            .select_related("batch__dataset", "worker")
            .get(pk=assignment.pk)
        )
        if a.worker is None or a.worker.external_id != worker_external_id:
            raise ValidationError(
                f"{source} reports assignment {a.external_assignment_id or a.uuid} for worker "
                f"{worker_external_id!r}, but it is bound here to worker "
                f"{a.worker.external_id if a.worker else None!r}; it stays unverified",
                field="workerId",
            )
        if a.verified_at is not None:
            return a
        a.verified_at = timezone.now()
        a.save(update_fields=["verified_at"])
        AssignmentDecisionLog.objects.create(
            assignment=a, old_status=a.status, new_status=a.status, reason=f"verified: {source}"
        )
        if a.status == Assignment.SUBMITTED:
            assignment_apply_policy(a)
    return a
