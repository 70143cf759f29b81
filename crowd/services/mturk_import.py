"""Importing MTurk batch results CSVs (the requester site's download) in the VGGSounder layout.

Columns used: HITId, AssignmentId, WorkerId, AssignmentStatus, Input.video_urls, Input.proposal_lists,
Answer.taskAnswers (optional: WorkTimeInSeconds, AcceptTime, SubmitTime, Reward). `Input.*` are Python-literal
lists (clip id = file stem of the URL); `Answer.taskAnswers` is the crowd-form JSON (see marketplace.crowdform).
Unknown clips are created, unknown class names are counted and skipped, a row that cannot be parsed is reported
with its AssignmentId and skipped; assignments already imported are left alone, so a re-import changes nothing.
Imported assignments are scored on their catch clips like live ones.
"""

from __future__ import annotations

import ast
import csv
import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

from django.db import transaction

from catalog.errors import ImportFailed
from catalog.models import Clip
from catalog.selectors.taxonomy import class_index
from catalog.services.operations import Progress
from crowd.marketplace.crowdform import AnswerParseError, clip_id_from_url, parse_task_answers
from crowd.models import Assignment, AssignmentDecisionLog, Batch, BatchItem, ClipAnswer, Hit, Worker
from crowd.services.assignments import assignment_apply_policy

REQUIRED_COLUMNS = (
    "HITId",
    "AssignmentId",
    "WorkerId",
    "AssignmentStatus",
    "Input.video_urls",
    "Input.proposal_lists",
    "Answer.taskAnswers",
)
STATUS_MAP = {"Approved": "approved", "Rejected": "rejected", "Submitted": "submitted"}


@dataclass
class ImportReport:
    rows: int = 0
    imported: int = 0
    already_imported: int = 0
    clips_created: int = 0
    batches_created: int = 0
    errors: list[str] = field(default_factory=list)
    unknown_classes: Counter = field(default_factory=Counter)

    def lines(self) -> list[str]:
        out = [
            f"{self.rows} row(s): {self.imported} assignment(s) imported, {self.already_imported} already "
            f"imported, {len(self.errors)} skipped; {self.clips_created} clip(s) and {self.batches_created} "
            "batch(es) created"
        ]
        out += [f"skipped: {e}" for e in self.errors]
        if self.unknown_classes:
            out.append(
                f"{sum(self.unknown_classes.values())} answer(s) named {len(self.unknown_classes)} class(es) "
                "not in the taxonomy (skipped):"
            )
            out += [f"  {name!r}: {n}" for name, n in self.unknown_classes.most_common()]
        return out

    def summary(self) -> dict:
        return {
            "rows": self.rows,
            "imported": self.imported,
            "already_imported": self.already_imported,
            "skipped": len(self.errors),
            "errors": self.errors,
            "clips_created": self.clips_created,
            "batches_created": self.batches_created,
            "unknown_classes": dict(self.unknown_classes),
        }


@dataclass
class _Row:
    where: str
    hit_id: str
    assignment_id: str
    worker_id: str
    status: str
    urls: list[str]
    proposals: list[list[str]]
    payloads: dict
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
    if not text:
        return None
    for fmt in ("%a %b %d %H:%M:%S %Z %Y", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S%z"):
        try:
            value = dt.datetime.strptime(text.replace("PDT", "UTC").replace("PST", "UTC"), fmt)
            return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
        except ValueError:
            continue
    return None


def read_results(paths: list[Path], classes: set[str], report: ImportReport) -> list[_Row]:
    missing_msgs = []
    rows: list[_Row] = []
    for path in paths:
        with Path(path).open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            missing = [c for c in REQUIRED_COLUMNS if c not in header]
            if missing:
                missing_msgs.append(
                    f"{path}: missing column(s) {', '.join(missing)}; an MTurk results CSV in the "
                    f"VGGSounder layout needs {', '.join(REQUIRED_COLUMNS)}"
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
                    urls = [str(u) for u in _literal_list(rec["Input.video_urls"], "Input.video_urls")]
                    props = _literal_list(rec["Input.proposal_lists"], "Input.proposal_lists")
                    if len(props) != len(urls) or not all(isinstance(p, (list, tuple)) for p in props):
                        raise AnswerParseError(
                            "Input.proposal_lists must hold one list per video URL "
                            f"({len(urls)} URLs, {len(props)} lists)"
                        )
                    for u in urls:
                        clip_id_from_url(u)
                    parsed = parse_task_answers(rec["Answer.taskAnswers"], urls, classes)
                except AnswerParseError as exc:
                    report.errors.append(f"{where}: AssignmentId {aid or '(empty)'}: {exc}")
                    continue
                report.unknown_classes.update(parsed.unknown_classes)
                clean_props = []
                for plist in props:
                    keep = [str(c) for c in plist if str(c) in classes]
                    report.unknown_classes.update(str(c) for c in plist if str(c) not in classes)
                    clean_props.append(keep)
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
                        where,
                        rec["HITId"].strip(),
                        aid,
                        rec["WorkerId"].strip(),
                        STATUS_MAP[status],
                        urls,
                        clean_props,
                        parsed.payloads,
                        work,
                        _mturk_time(rec.get("SubmitTime")),
                        reward,
                    )
                )
    if missing_msgs:
        raise ImportFailed(
            f"{len(missing_msgs)} file(s) lack required columns; nothing was imported", details=missing_msgs
        )
    return rows


def mturk_results_import(dataset, paths: list[Path], *, echo=None, user=None) -> ImportReport:
    """Import the files (see module doc) into `dataset`, in one transaction for the rows that parse."""
    report = ImportReport()
    index = class_index()
    rows = read_results([Path(p) for p in paths], set(index), report)
    progress = Progress("import", dataset=dataset, user=user, echo=None)
    progress.total(len(rows))
    with transaction.atomic():
        for row in rows:
            _import_row(dataset, row, index, report)
            progress.step(f"{row.where}: {row.assignment_id}")
    progress.finish(report.summary(), message=report.lines()[0])
    if echo:
        for line in report.lines():
            echo(line)
    return report


def _import_row(dataset, row: _Row, index: dict[str, int], report: ImportReport):
    if Assignment.objects.filter(backend="mturk", external_assignment_id=row.assignment_id).exists():
        report.already_imported += 1
        return
    vids = [clip_id_from_url(u) for u in row.urls]
    clips = {c.video_id: c for c in Clip.objects.filter(dataset=dataset, video_id__in=vids)}
    for vid, url in zip(vids, row.urls):
        if vid not in clips:
            clips[vid] = Clip.objects.create(dataset=dataset, video_id=vid, media_url=url)
            report.clips_created += 1
    hit = Hit.objects.filter(backend="mturk", external_id=row.hit_id, batch__dataset=dataset).first()
    if hit is None:
        batch = Batch.objects.create(dataset=dataset)
        seen = set()
        items = []
        for vid, props in zip(vids, row.proposals):
            if vid in seen:
                continue
            seen.add(vid)
            items.append(
                BatchItem(
                    batch=batch, clip=clips[vid], position=len(items), is_gold=clips[vid].is_gold, proposals=props
                )
            )
        BatchItem.objects.bulk_create(items)
        hit = Hit.objects.create(
            batch=batch,
            backend="mturk",
            external_id=row.hit_id,
            sandbox=False,
            mode=Hit.HTML,
            reward=row.reward or Decimal("0"),
            max_assignments=dataset.annotations_per_clip,
            target_assignments=dataset.annotations_per_clip,
            status=Hit.COMPLETED,
            unique_request_token=f"avcrowd-import-{row.hit_id}"[:64],
            title="imported from an MTurk results CSV",
        )
        report.batches_created += 1
    batch = hit.batch
    worker, _ = Worker.objects.get_or_create(backend="mturk", external_id=row.worker_id)
    if Assignment.objects.filter(batch=batch, worker=worker).exists():
        report.errors.append(
            f"{row.where}: AssignmentId {row.assignment_id}: worker {row.worker_id} already has "
            f"another assignment of HIT {row.hit_id}"
        )
        return
    a = Assignment.objects.create(
        batch=batch,
        worker=worker,
        backend="mturk",
        external_assignment_id=row.assignment_id,
        external_hit_id=row.hit_id,
        status=row.status,
        submitted_at=row.submitted_at,
        work_seconds=row.work_seconds,
        decision_reason="imported from an MTurk results CSV",
    )
    Assignment.objects.filter(pk=a.pk).update(started_at=row.submitted_at or a.started_at)
    AssignmentDecisionLog.objects.create(
        assignment=a, old_status="", new_status=row.status, reason="imported from an MTurk results CSV"
    )
    answers, done = [], set()
    for vid, url in zip(vids, row.urls):
        if vid in done:
            continue
        done.add(vid)
        p = row.payloads[url]
        labels = sorted(p["labels"], key=lambda lab: index[lab["name"]])
        answers.append(
            ClipAnswer(
                assignment=a,
                clip=clips[vid],
                background_music=p["background_music"],
                voice_over=p["voice_over"],
                static_image=p["static_image"],
                played=True,
                watch_seconds=0.0,
                labels=labels,
                comment=p.get("comment", ""),
            )
        )
    ClipAnswer.objects.bulk_create(answers)
    assignment_apply_policy(a)  # scored like a live submission
    HitAssignmentModel = Hit.marketplace_assignments.rel.related_model
    HitAssignmentModel.objects.get_or_create(
        hit=hit,
        external_id=row.assignment_id,
        defaults={
            "assignment": a,
            "worker_external_id": row.worker_id,
            "remote_status": row.status.capitalize(),
            "decision_pushed": row.status if row.status != "submitted" else "",
        },
    )
    report.imported += 1
