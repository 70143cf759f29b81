"""Importing MTurk batch results CSVs (the requester site's download).

MTurk's layout: HITId, HITTypeId, Title, Description, Keywords, Reward, CreationTime, MaxAssignments,
RequesterAnnotation, AssignmentDurationInSeconds, AutoApprovalDelayInSeconds, Expiration, NumberOfSimilarHITs,
LifetimeInSeconds, AssignmentId, WorkerId, AssignmentStatus, AcceptTime, SubmitTime, AutoApprovalTime,
ApprovalTime, RejectionTime, RequesterFeedback, WorkTimeInSeconds, LifetimeApprovalRate, Last30DaysApprovalRate,
Last7DaysApprovalRate, then one Input.<column> per column of the batch-input CSV and one Answer.<field> per form
field (the crowd-form puts everything in Answer.taskAnswers), then Approve, Reject.

Which clips a row answered, in this order:
1. a HIT avcrowd published (HITId known), or one of our batches named by Input.batch_id (export_mturk_input
   writes it) or RequesterAnnotation (CreateHIT sets it): the batch's clips, answers keyed by clip id (our page)
   or by the row's Input.video_urls in position order (older pages);
2. otherwise the VGGSounder layout: clip id = file stem of each Input.video_urls URL (the clip-id rule applies;
   avcrowd's own signed media URLs name no clip and are refused), unknown clips are created.

Every imported HIT gets its MaxAssignments and a status from the file (completed when it holds that many
assignments, else expired) and is closed for publishing. Rows are verified work (the file is MTurk's record of
them). A worker who answered the same clip in two HITs casts one vote: the later submission counts, the earlier
answer is kept and flagged `superseded`. Unknown class names are counted and skipped; a row that cannot be used is
reported with its line and AssignmentId and skipped; assignments already imported are left alone, so a re-import
changes nothing. Imported assignments are scored on their catch clips like live ones; a Submitted row with no
catch trial to score waits (import the gold standard, which re-scores it).
"""

from __future__ import annotations

import ast
import csv
import datetime as dt
import uuid
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from urllib.parse import urlparse

from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from catalog.errors import ImportFailed
from catalog.models import Clip
from catalog.selectors.taxonomy import class_index
from catalog.services.clips import VIDEO_ID_RE
from catalog.services.operations import Progress
from crowd.marketplace.crowdform import AnswerParseError, clip_id_from_url, parse_task_answers
from crowd.models import Assignment, AssignmentDecisionLog, Batch, BatchItem, ClipAnswer, Hit, HitAssignment, Worker
from crowd.services.assignments import assignment_apply_policy, assignment_score
from crowd.services.progress import status_change_shift
from crowd.services.publish import public_media_url

REQUIRED_COLUMNS = ("HITId", "AssignmentId", "WorkerId", "AssignmentStatus", "Answer.taskAnswers")
STATUS_MAP = {"Approved": "approved", "Rejected": "rejected", "Submitted": "submitted"}
IMPORTED = "imported from an MTurk results CSV"


@dataclass
class ImportReport:
    rows: int = 0
    imported: int = 0
    already_imported: int = 0
    clips_created: int = 0
    batches_created: int = 0
    hits_created: int = 0
    superseded: int = 0
    errors: list[str] = field(default_factory=list)
    unknown_classes: Counter = field(default_factory=Counter)
    duplicates: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [
            f"{self.rows} row(s): {self.imported} assignment(s) imported, {self.already_imported} already "
            f"imported, {len(self.errors)} skipped; {self.clips_created} clip(s), {self.batches_created} "
            f"batch(es) and {self.hits_created} HIT(s) created"
        ]
        out += [f"skipped: {e}" for e in self.errors]
        if self.superseded:
            out.append(
                f"{self.superseded} answer(s) superseded: the same worker answered the same clip in a later "
                "submission, which is their one vote (the earlier answer is kept, flagged superseded):"
            )
            out += [f"  {d}" for d in self.duplicates[:50]]
        if self.unknown_classes:
            out.append(
                f"{sum(self.unknown_classes.values())} answer(s) named {len(self.unknown_classes)} class(es) "
                "not in the taxonomy (skipped):"
            )
            out += [f"  {name!r}: {n}" for name, n in self.unknown_classes.most_common()]
        return out

    def counts(self) -> tuple:
        return (
            self.clips_created,
            self.batches_created,
            self.hits_created,
            self.superseded,
            len(self.duplicates),
            Counter(self.unknown_classes),
        )

    def restore(self, counts: tuple):
        self.clips_created, self.batches_created, self.hits_created, self.superseded, n_dup, unknown = counts
        del self.duplicates[n_dup:]
        self.unknown_classes = unknown

    def summary(self) -> dict:
        return {
            "rows": self.rows,
            "imported": self.imported,
            "already_imported": self.already_imported,
            "skipped": len(self.errors),
            "errors": self.errors,
            "clips_created": self.clips_created,
            "batches_created": self.batches_created,
            "hits_created": self.hits_created,
            "superseded": self.superseded,
            "unknown_classes": dict(self.unknown_classes),
        }


@dataclass
class _Row:
    where: str
    hit_id: str
    assignment_id: str
    worker_id: str
    status: str
    task_answers: str
    urls: list[str] | None
    proposals: list[list[str]] | None
    clip_ids: list[str] | None
    batch_ref: str  # Input.batch_id or RequesterAnnotation: maybe one of our batch uuids
    max_assignments: int | None
    expiration: dt.datetime | None
    work_seconds: float | None
    submitted_at: dt.datetime | None
    reward: Decimal | None


def _literal_list(text: str, column: str) -> list:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError) as exc:
        raise AnswerParseError(f"{column} is not a Python-literal list ({exc.__class__.__name__})") from exc
    if not isinstance(value, (list, tuple)):
        raise AnswerParseError(f"{column} must be a list, got {type(value).__name__}")
    return list(value)


def _mturk_time(text: str | None):
    """MTurk's CSV times ("Mon Mar 04 10:00:00 PST 2024"; PST/PDT taken as their UTC offsets) or ISO 8601."""
    if not text:
        return None
    text = text.strip()
    offsets = {"PST": -8, "PDT": -7, "UTC": 0, "GMT": 0}
    parts = text.split()
    if len(parts) == 6 and parts[4] in offsets:
        try:
            value = dt.datetime.strptime(" ".join(parts[:4] + parts[5:]), "%a %b %d %H:%M:%S %Y")
        except ValueError:
            return None
        return value.replace(tzinfo=dt.timezone(dt.timedelta(hours=offsets[parts[4]])))
    for fmt in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S%z", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            value = dt.datetime.strptime(text, fmt)
            return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
        except ValueError:
            continue
    return None


def _int_or_none(text) -> int | None:
    try:
        return int(str(text).strip())
    except (TypeError, ValueError):
        return None


def read_results(paths: list[Path], report: ImportReport) -> list[_Row]:
    missing_msgs = []
    rows: list[_Row] = []
    for path in paths:
        with Path(path).open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            missing = [c for c in REQUIRED_COLUMNS if c not in header]
            if missing:
                missing_msgs.append(
                    f"{path}: missing column(s) {', '.join(missing)}; an MTurk batch results CSV needs "
                    f"{', '.join(REQUIRED_COLUMNS)}, and Input.video_urls + Input.proposal_lists (VGGSounder "
                    "layout) or Input.batch_id (export_mturk_input) for HITs avcrowd did not publish"
                )
                continue
            for lineno, rec in enumerate(reader, start=2):
                report.rows += 1
                aid = (rec.get("AssignmentId") or "").strip()
                where = f"{path}:{lineno}"
                try:
                    if not aid:
                        raise AnswerParseError("AssignmentId is empty")
                    status = (rec.get("AssignmentStatus") or "").strip()
                    if status not in STATUS_MAP:
                        raise AnswerParseError(f"AssignmentStatus {status!r} is not one of {', '.join(STATUS_MAP)}")
                    if not (rec.get("WorkerId") or "").strip():
                        raise AnswerParseError("WorkerId is empty")
                    if not (rec.get("HITId") or "").strip():
                        raise AnswerParseError("HITId is empty")
                    urls = props = ids = None
                    if (rec.get("Input.video_urls") or "").strip():
                        urls = [str(u) for u in _literal_list(rec["Input.video_urls"], "Input.video_urls")]
                    if (rec.get("Input.proposal_lists") or "").strip():
                        props = _literal_list(rec["Input.proposal_lists"], "Input.proposal_lists")
                        if urls is not None and len(props) != len(urls):
                            raise AnswerParseError(
                                "Input.proposal_lists must hold one list per video URL "
                                f"({len(urls)} URLs, {len(props)} lists)"
                            )
                        if not all(isinstance(p, (list, tuple)) for p in props):
                            raise AnswerParseError("Input.proposal_lists must hold one list of class names per clip")
                    if (rec.get("Input.clip_ids") or "").strip():
                        ids = [str(v) for v in _literal_list(rec["Input.clip_ids"], "Input.clip_ids")]
                except AnswerParseError as exc:
                    report.errors.append(f"{where}: AssignmentId {aid or '(empty)'}: {exc}")
                    continue
                try:
                    work = float(rec.get("WorkTimeInSeconds") or "nan")
                    work = None if work != work else work
                except ValueError:
                    work = None
                try:
                    reward = Decimal((rec.get("Reward") or "").replace("$", "").strip() or "x")
                except InvalidOperation:
                    reward = None
                rows.append(
                    _Row(
                        where=where,
                        hit_id=rec["HITId"].strip(),
                        assignment_id=aid,
                        worker_id=rec["WorkerId"].strip(),
                        status=STATUS_MAP[status],
                        task_answers=rec["Answer.taskAnswers"],
                        urls=urls,
                        proposals=[[str(c) for c in p] for p in props] if props is not None else None,
                        clip_ids=ids,
                        batch_ref=(rec.get("Input.batch_id") or rec.get("RequesterAnnotation") or "").strip(),
                        max_assignments=_int_or_none(rec.get("MaxAssignments")),
                        expiration=_mturk_time(rec.get("Expiration")),
                        work_seconds=work,
                        submitted_at=_mturk_time(rec.get("SubmitTime")),
                        reward=reward,
                    )
                )
    if missing_msgs:
        raise ImportFailed(
            f"{len(missing_msgs)} file(s) lack required columns; nothing was imported", details=missing_msgs
        )
    return rows


def mturk_results_import(dataset, paths: list[Path], *, echo=None, user=None) -> ImportReport:
    """Import the files (see module doc) into `dataset`, in one transaction for the rows that can be used."""
    report = ImportReport()
    index = class_index()
    rows = read_results([Path(p) for p in paths], report)
    progress = Progress("import", dataset=dataset, user=user, echo=None)
    progress.total(len(rows))
    importer = _Importer(dataset, index, report)
    with transaction.atomic():
        for row in rows:
            before = report.counts()
            try:
                with transaction.atomic():  # a row that cannot be used leaves nothing behind
                    importer.row(row)
            except AnswerParseError as exc:
                report.restore(before)
                report.errors.append(f"{row.where}: AssignmentId {row.assignment_id}: {exc}")
            progress.step(f"{row.where}: {row.assignment_id}")
        importer.finish()
    progress.finish(report.summary(), message=report.lines()[0])
    if echo:
        for line in report.lines():
            echo(line)
    return report


def _own_media_prefix() -> str:
    """The path of avcrowd's signed media endpoint: URLs under it carry a token, not a clip id."""
    return reverse("frontend:clip-media", args=["x"]).rsplit("x", 1)[0]


class _Importer:
    def __init__(self, dataset, index: dict[str, int], report: ImportReport):
        self.dataset = dataset
        self.index = index
        self.classes = set(index)
        self.report = report
        self.touched_hits: set[int] = set()
        self.own_media = _own_media_prefix()

    # --- which batch ---
    def _our_batch(self, row: _Row):
        try:
            ref = uuid.UUID(row.batch_ref)
        except ValueError:
            return None
        return Batch.objects.filter(dataset=self.dataset, uuid=ref).first()

    def _vggsounder_clip_ids(self, row: _Row) -> list[str]:
        if row.urls is None:
            raise AnswerParseError(
                f"HIT {row.hit_id} is not one avcrowd published and the row has no Input.video_urls (VGGSounder "
                "layout) nor Input.batch_id (export_mturk_input): it does not say which clips were answered"
            )
        if row.proposals is None:
            raise AnswerParseError("Input.proposal_lists is missing or empty; the VGGSounder layout needs it")
        ids = []
        for url in row.urls:
            if urlparse(url).path.startswith(self.own_media):
                raise AnswerParseError(
                    f"Input.video_urls holds avcrowd's signed media URL {url[:80]!r}, which names no clip; "
                    "these rows come from avcrowd's own batch CSV: import them into the dataset that holds "
                    "its batches (Input.batch_id names them)"
                )
            vid = clip_id_from_url(url)
            if not VIDEO_ID_RE.match(vid):
                raise AnswerParseError(
                    f"Input.video_urls: clip id {vid[:80]!r} (file stem of {url[:80]!r}) breaks the clip-id rule; "
                    "allowed: 1-200 of A-Z a-z 0-9 _ - ."
                )
            ids.append(vid)
        return ids

    def _hit_for(self, row: _Row) -> Hit:
        hit = Hit.objects.filter(backend="mturk", external_id=row.hit_id, batch__dataset=self.dataset).first()
        if hit is None:
            batch = self._our_batch(row)
            if batch is None:
                batch = self._new_batch(row)
            hit = Hit.objects.create(
                batch=batch,
                backend="mturk",
                external_id=row.hit_id,
                sandbox=False,
                mode=Hit.HTML,
                reward=row.reward or Decimal("0"),
                max_assignments=row.max_assignments or self.dataset.annotations_per_clip,
                target_assignments=row.max_assignments or self.dataset.annotations_per_clip,
                status=Hit.EXPIRED,
                imported=True,
                unique_request_token=f"avcrowd-import-{row.hit_id}"[:64],
                title=IMPORTED,
                expires_at=row.expiration,
            )
            self.report.hits_created += 1
        return hit

    def _new_batch(self, row: _Row) -> Batch:
        vids = self._vggsounder_clip_ids(row)
        clips = {c.video_id: c for c in Clip.objects.filter(dataset=self.dataset, video_id__in=vids)}
        for vid, url in zip(vids, row.urls):
            if vid not in clips:
                clips[vid] = Clip.objects.create(dataset=self.dataset, video_id=vid, media_url=url)
                self.report.clips_created += 1
        batch = Batch.objects.create(dataset=self.dataset, status=Batch.CLOSED)
        items, seen = [], set()
        for vid, props in zip(vids, row.proposals):
            if vid in seen:
                continue
            seen.add(vid)
            keep = [c for c in props if c in self.classes]
            self.report.unknown_classes.update(c for c in props if c not in self.classes)
            items.append(
                BatchItem(batch=batch, clip=clips[vid], position=len(items), is_gold=clips[vid].is_gold, proposals=keep)
            )
        BatchItem.objects.bulk_create(items)
        self.report.batches_created += 1
        return batch

    def _answer_keys(self, row: _Row, items: list[BatchItem]) -> list[tuple[str, ...]]:
        """Per batch item, the keys its answer may have in taskAnswers: the clip id, the row's URL at its position
        (older pages and the VGGSounder layout key by URL), its stable public URL."""
        keys = []
        for pos, item in enumerate(items):
            ks = [item.clip.video_id]
            if row.urls is not None and len(row.urls) == len(items):
                ks.append(row.urls[pos])
            if item.clip.media_url.startswith(("http://", "https://")):
                ks.append(public_media_url(item.clip))
            keys.append(tuple(ks))
        return keys

    # --- one row ---
    def row(self, row: _Row):
        if Assignment.objects.filter(backend="mturk", external_assignment_id=row.assignment_id).exists():
            self.report.already_imported += 1
            return
        hit = self._hit_for(row)
        batch = hit.batch
        items = list(batch.items.select_related("clip").order_by("position"))
        if row.clip_ids is not None and row.clip_ids != [i.clip.video_id for i in items]:
            raise AnswerParseError(f"Input.clip_ids {row.clip_ids[:3]}... do not match the clips of batch {batch.uuid}")
        parsed = parse_task_answers(row.task_answers, self._answer_keys(row, items), self.classes)
        self.report.unknown_classes.update(parsed.unknown_classes)
        worker, _ = Worker.objects.get_or_create(backend="mturk", external_id=row.worker_id)
        if Assignment.objects.filter(batch=batch, worker=worker).exists():
            raise AnswerParseError(f"worker {row.worker_id} already has another assignment of HIT {row.hit_id}")
        now = timezone.now()
        a = Assignment.objects.create(
            batch=batch,
            worker=worker,
            backend="mturk",
            external_assignment_id=row.assignment_id,
            external_hit_id=row.hit_id,
            status=row.status,
            submitted_at=row.submitted_at,
            work_seconds=row.work_seconds,
            decision_reason=IMPORTED,
            verified_at=now,
        )
        Assignment.objects.filter(pk=a.pk).update(started_at=row.submitted_at or a.started_at)
        AssignmentDecisionLog.objects.create(assignment=a, old_status="", new_status=row.status, reason=IMPORTED)
        answers = []
        for item in items:
            p = parsed.payloads[item.clip.video_id]
            answers.append(
                ClipAnswer(
                    assignment=a,
                    clip=item.clip,
                    background_music=p["background_music"],
                    voice_over=p["voice_over"],
                    static_image=p["static_image"],
                    played=True,
                    watch_seconds=0.0,
                    labels=sorted(p["labels"], key=lambda lab: self.index[lab["name"]]),
                    comment=p.get("comment", ""),
                )
            )
        ClipAnswer.objects.bulk_create(answers)
        status_change_shift(a.pk, "", row.status)
        self._one_vote(a, worker, [i.clip for i in items])
        if row.status == Assignment.SUBMITTED and not BatchItem.objects.filter(batch=batch, is_gold=True).exists():
            Assignment.objects.filter(pk=a.pk).update(
                decision_reason=f"{IMPORTED}; waiting for gold: no catch trial to score yet (import the gold "
                "standard, which re-scores it)"
            )
            assignment_score(a)
        else:
            assignment_apply_policy(a)  # scored like a live submission
        HitAssignment.objects.get_or_create(
            hit=hit,
            external_id=row.assignment_id,
            defaults={
                "assignment": a,
                "worker_external_id": row.worker_id,
                "remote_status": row.status.capitalize(),
                "decision_pushed": row.status if row.status != "submitted" else "",
                "submitted_at": row.submitted_at,
            },
        )
        self.touched_hits.add(hit.pk)
        self.report.imported += 1

    def _one_vote(self, a: Assignment, worker: Worker, clips: list):
        """One vote per (worker, clip): of this worker's answers to these clips in other assignments, the one of
        the later submission counts; the earlier one is flagged superseded."""
        mine = {c.pk: c for c in clips}
        others = (
            ClipAnswer.objects.filter(assignment__worker=worker, clip_id__in=list(mine), superseded=False)
            .exclude(assignment=a)
            .select_related("assignment", "clip")
        )
        for other in others:
            ours = ClipAnswer.objects.get(assignment=a, clip_id=other.clip_id)
            later_is_ours = (a.submitted_at or timezone.now(), a.pk) >= (
                other.assignment.submitted_at or timezone.now(),
                other.assignment.pk,
            )
            older = other if later_is_ours else ours
            ClipAnswer.objects.filter(pk=older.pk).update(superseded=True)
            self.report.superseded += 1
            kept = a if later_is_ours else other.assignment
            dropped = other.assignment if later_is_ours else a
            self.report.duplicates.append(
                f"worker {worker.external_id}, clip {other.clip.video_id}: assignment "
                f"{kept.external_assignment_id} counts, {dropped.external_assignment_id} superseded"
            )

    def finish(self):
        """Imported HITs: closed for publishing, completed when they hold MaxAssignments assignments."""
        for hit in Hit.objects.filter(pk__in=self.touched_hits, imported=True):
            n = hit.batch.assignments.exclude(status=Assignment.REJECTED).count()
            status = Hit.COMPLETED if n >= hit.max_assignments else Hit.EXPIRED
            Hit.objects.filter(pk=hit.pk).update(status=status)
            Batch.objects.filter(pk=hit.batch_id).update(status=Batch.CLOSED)
