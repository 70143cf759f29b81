"""Annotator quality beyond gold for the operations pages, and qualifying the good ones on the marketplace: an
avcrowd qualification on MTurk (AssociateQualificationWithWorker) or a Prolific participant group (allow list), so
that later batches can be restricted to them."""

from __future__ import annotations

import numpy as np

from catalog.errors import ValidationError
from catalog.models import Dataset
from crowd.marketplace import mturk
from crowd.marketplace import prolific as prolific_mod
from crowd.models import Assignment, MarketplaceQualification, Worker
from crowd.services.publish import qualification_type_ensure
from labels.core.card import worker_quality
from labels.core.votes import MODALITY_CODES
from labels.core.workers import agreement_with_merged, catch_trend
from labels.models import Release, ReleaseLabel
from labels.services.load import votes_load

QUALIFIED = "qualified"  # MarketplaceQualification.purpose of our MTurk qualification type
PROLIFIC_QUALIFIED = "prolific-qualified"  # ... and of our Prolific allow list
QUALIFIED_NAME = "avcrowd: qualified annotator"
QUALIFIED_DESCRIPTION = "Given to workers whose video labels agreed well with our check clips (catch-trial F1)."


def latest_release(dataset: Dataset) -> Release | None:
    return Release.objects.filter(dataset=dataset, imported=False).order_by("-created_at", "-id").first()


def worker_quality_report(dataset: Dataset, release: Release | None = None) -> list[dict]:
    """One row per crowd worker of the dataset: catch-F1 trend over its scored assignments (submission order,
    approved or rejected), the dataset-level quality (labels.core.card.worker_quality, approved work) and its
    agreement with the merged labels of `release` (default: the latest merged release) on non-gold clips."""
    rows: dict[int, dict] = {}
    for w_id, ext, backend, f1, status in (
        Assignment.objects.filter(batch__dataset=dataset, worker__isnull=False, catch_f1__isnull=False)
        .order_by("submitted_at", "id")
        .values_list("worker_id", "worker__external_id", "worker__backend", "catch_f1", "status")
    ):
        r = rows.setdefault(w_id, {"id": w_id, "worker": ext, "backend": backend, "f1s": [], "rejected": 0})
        r["f1s"].append(f1)
        r["rejected"] += status == Assignment.REJECTED
    loaded = votes_load(dataset, include_experts=False, with_proposals=False)
    quality = worker_quality(loaded.votes, loaded.gold, loaded.catch_clips)
    release = release or latest_release(dataset)
    agreement = {}
    if release is not None:
        clip_index = {vid: i for i, vid in enumerate(loaded.clip_ids)}
        class_index = {name: i for i, name in enumerate(loaded.class_names)}
        merged: dict[int, dict[int, int]] = {}
        for vid in release.clips.values_list("video_id", flat=True):
            if vid in clip_index:
                merged[clip_index[vid]] = {}
        for vid, name, mod in ReleaseLabel.objects.filter(release=release, origin=ReleaseLabel.HUMAN).values_list(
            "release_clip__video_id", "name", "modality"
        ):
            if vid in clip_index and name in class_index:
                merged[clip_index[vid]][class_index[name]] = MODALITY_CODES[mod]
        non_gold = np.flatnonzero(~loaded.clip_is_gold).tolist()
        agreement = agreement_with_merged(loaded.votes, merged, clips=non_gold)
    slot = {key[1]: i for i, key in enumerate(loaded.annotator_keys) if key[0] == "worker"}
    out = []
    for w_id, r in rows.items():
        i = slot.get(w_id)
        q = None if i is None or np.isnan(quality[i]) else round(float(quality[i]), 4)
        out.append(
            {
                "id": w_id,
                "worker": r["worker"],
                "backend": r["backend"],
                "trend": catch_trend(r["f1s"]),
                "rejected": r["rejected"],
                "quality": q,
                "agreement": agreement.get(i) if i is not None else None,
            }
        )
    out.sort(key=lambda r: (r["quality"] is None, -(r["quality"] or 0), r["worker"]))
    return out


def qualified_workers(dataset: Dataset, *, min_f1: float, min_assignments: int = 2, backend: str = "mturk"):
    """(worker rows, report) of `backend` workers of the dataset with quality >= min_f1 over at least
    min_assignments scored assignments, not blocked."""
    if not 0 <= min_f1 <= 1:
        raise ValidationError(f"min F1 must be between 0 and 1; got {min_f1}", field="min_f1")
    if min_assignments < 1:
        raise ValidationError(f"min assignments must be at least 1; got {min_assignments}", field="min_assignments")
    if backend not in ("mturk", "prolific"):
        raise ValidationError(f"backend {backend!r} is not allowed; allowed: mturk, prolific", field="backend")
    report = worker_quality_report(dataset)
    blocked = set(Worker.objects.filter(is_blocked=True).values_list("id", flat=True))
    keep = [
        r
        for r in report
        if r["backend"] == backend
        and r["id"] not in blocked
        and r["quality"] is not None
        and r["quality"] >= min_f1
        and r["trend"]["n"] >= min_assignments
    ]
    return keep, report


def ensure_qualified_type(mt: mturk.MTurk) -> str:
    """Our 'qualified annotator' MTurk qualification type in this environment (created on first use, reused)."""
    return qualification_type_ensure(mt, purpose=QUALIFIED, name=QUALIFIED_NAME, description=QUALIFIED_DESCRIPTION)


def workers_qualify(
    dataset: Dataset,
    *,
    min_f1: float,
    min_assignments: int = 2,
    backend: str = "mturk",
    sandbox: bool = True,
    dry_run: bool = False,
) -> dict:
    """Grant the qualification (MTurk: IntegerValue = quality x 100, so HITs can require e.g. >= 60) or add to the
    allow list (Prolific participant group) every worker above the threshold. Returns what was (or would be) done."""
    keep, report = qualified_workers(dataset, min_f1=min_f1, min_assignments=min_assignments, backend=backend)
    out = {"backend": backend, "workers": [r["worker"] for r in keep], "considered": len(report), "target": None}
    if dry_run or not keep:
        return out
    if backend == "mturk":
        mt = mturk.get_backend(sandbox)
        qid = ensure_qualified_type(mt)
        for r in keep:
            mt.call(
                "AssociateQualificationWithWorker",
                QualificationTypeId=qid,
                WorkerId=r["worker"],
                IntegerValue=int(round(100 * r["quality"])),
                SendNotification=False,
            )
        out["target"] = qid
    else:
        client = prolific_mod.client_factory()
        row = MarketplaceQualification.objects.filter(sandbox=False, purpose=PROLIFIC_QUALIFIED).first()
        if row is None:
            workspace = mturk.setting("PROLIFIC_WORKSPACE_ID")
            if not workspace:
                raise ValidationError(
                    "a Prolific allow list is a participant group: set PROLIFIC_WORKSPACE_ID (Prolific > Workspace "
                    "settings) so avcrowd can create it. Nothing was sent.",
                    field="backend",
                )
            group = str(
                client.group_create(QUALIFIED_NAME, workspace_id=workspace, description=QUALIFIED_DESCRIPTION)["id"]
            )
            row = MarketplaceQualification.objects.create(
                sandbox=False, purpose=PROLIFIC_QUALIFIED, qualification_type_id=group
            )
        client.group_add(row.qualification_type_id, out["workers"])
        out["target"] = row.qualification_type_id
    return out
