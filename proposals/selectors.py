"""Reads of the prediction store and proposals."""

from __future__ import annotations

import numpy as np

from catalog.models import Clip
from catalog.selectors.taxonomy import class_names

from .core.predictions_io import MODALITIES, NpzRows, PredictionArrays, PredictionFileError, from_npz
from .core.strategy import PredictionRows, Predictions
from .models import ModelRun, Proposal, ProposalSet


def run_arrays(run: ModelRun) -> PredictionArrays:
    if not run.artifact:
        raise ValueError(f"model run {run.pk} ({run.model_name}) has no stored predictions yet (status {run.status})")
    with run.artifact.open("rb") as fh:
        return from_npz(fh)


def run_scores(run: ModelRun) -> tuple[list[str], dict[str, np.ndarray]]:
    """(video_ids, {"a"|"v"|"av": float32 [n, 309]}); empty dict for label-set-only runs."""
    arr = run_arrays(run)
    return arr.video_ids, {m: arr.scores[m].astype(np.float32, copy=False) for m in MODALITIES if m in arr.scores}


def run_label_sets(run: ModelRun) -> dict[str, dict[str, list[str]]]:
    """{video_id: {"a"|"v"|"av": [class names]}}: the stored label sets; for runs that only have
    scores, the top-1 class per input modality."""
    arr = run_arrays(run)
    names = arr.class_names or class_names()
    out: dict[str, dict[str, list[str]]] = {v: {} for v in arr.video_ids}
    for m in MODALITIES:
        if m in arr.labels:
            mat = arr.labels[m]
            for i, vid in enumerate(arr.video_ids):
                out[vid][m] = [names[j] for j in np.flatnonzero(mat[i])]
        elif m in arr.scores:
            top = arr.scores[m].argmax(axis=1)
            for i, vid in enumerate(arr.video_ids):
                out[vid][m] = [names[int(top[i])]]
    return out


def dataset_runs(dataset, *, names: list[str] | None = None) -> list[ModelRun]:
    runs = list(ModelRun.objects.filter(dataset=dataset, status=ModelRun.DONE).select_related("checkpoint"))
    if names is not None:
        by_name = {r.model_name: r for r in runs}
        missing = sorted(set(names) - set(by_name))
        if missing:
            raise ValueError(
                f"dataset {dataset.name}: no finished model run named {missing}; finished runs: {sorted(by_name)}"
            )
        runs = [by_name[n] for n in names]
    return runs


def dataset_predictions(dataset, runs: list[ModelRun] | None = None) -> Predictions:
    """All finished runs of the dataset aligned to its clips (video_id order) plus original labels."""
    names = class_names()
    clips = list(Clip.objects.filter(dataset=dataset).order_by("video_id").values_list("id", "video_id"))
    vids = [v for _, v in clips]
    row = {v: i for i, v in enumerate(vids)}
    n, C = len(vids), len(names)
    original = np.zeros((n, C), dtype=bool)
    through = Clip.original_labels.through
    pk_row = {pk: i for i, (pk, _) in enumerate(clips)}
    for clip_id, idx in through.objects.filter(clip__dataset=dataset).values_list("clip_id", "taxonomyclass__index"):
        original[pk_row[clip_id], idx] = True
    scores: dict[str, dict[str, np.ndarray]] = {}
    label_sets: dict[str, dict[str, np.ndarray]] = {}
    coverage: dict[str, np.ndarray] = {}
    for run in runs if runs is not None else dataset_runs(dataset):
        arr = run_arrays(run)
        src = np.array([i for i, v in enumerate(arr.video_ids) if v in row], dtype=np.int64)
        dst = np.array([row[arr.video_ids[i]] for i in src], dtype=np.int64)
        cov = np.zeros(n, dtype=bool)
        cov[dst] = True
        coverage[run.model_name] = cov
        if arr.scores:
            per = {}
            for m, mat in arr.scores.items():
                full = np.full((n, C), np.finfo(np.float32).min, dtype=np.float32)
                full[dst] = mat[src]
                per[m] = full
            scores[run.model_name] = per
        else:
            per = {}
            for m, mat in arr.labels.items():
                full = np.zeros((n, C), dtype=bool)
                full[dst] = mat[src]
                per[m] = full
            label_sets[run.model_name] = per
    return Predictions(
        class_names=names, video_ids=vids, scores=scores, label_sets=label_sets, original=original, coverage=coverage
    )


def dataset_prediction_rows(dataset, runs: list[ModelRun], stack) -> PredictionRows:
    """Like :func:`dataset_predictions`, but every matrix is read a block of clips at a time from the runs' artifacts
    (opened on ``stack``, an ExitStack that must stay open while rows are read): memory bounded by the block, not
    the dataset. Rows follow the dataset's clips in video_id order; a run's missing clips get the lowest score
    (not covered), as in dataset_predictions."""
    names = class_names()
    clips = list(Clip.objects.filter(dataset=dataset).order_by("video_id").values_list("id", "video_id"))
    vids = [v for _, v in clips]
    row = {v: i for i, v in enumerate(vids)}
    n, C = len(vids), len(names)
    pk_row = {pk: i for i, (pk, _) in enumerate(clips)}
    through = Clip.original_labels.through
    pairs = np.array(
        [
            (pk_row[clip_id], idx)
            for clip_id, idx in through.objects.filter(clip__dataset=dataset).values_list(
                "clip_id", "taxonomyclass__index"
            )
        ],
        dtype=np.int64,
    ).reshape(-1, 2)
    pairs = pairs[np.argsort(pairs[:, 0], kind="stable")]

    def original(start: int, stop: int) -> np.ndarray:
        a, b = np.searchsorted(pairs[:, 0], [start, stop])
        out = np.zeros((stop - start, C), dtype=bool)
        out[pairs[a:b, 0] - start, pairs[a:b, 1]] = True
        return out

    def reader(npz: NpzRows, member: str, src_of: np.ndarray, fill, dtype):
        def rows(start: int, stop: int) -> np.ndarray:
            src = src_of[start:stop]
            have = src >= 0
            if have.all():
                return npz.take(member, src).astype(dtype, copy=False)
            out = np.full((stop - start, C), fill, dtype=dtype)
            out[have] = npz.take(member, src[have])
            return out

        return rows

    scores: dict[str, dict] = {}
    label_sets: dict[str, dict] = {}
    coverage: dict[str, np.ndarray] = {}
    for run in runs:
        if not run.artifact:
            raise PredictionFileError(
                f"model run {run.pk} ({run.model_name}) has no stored predictions yet (status {run.status})"
            )
        npz = NpzRows(stack.enter_context(run.artifact.open("rb")), where=f"model run {run.model_name}")
        run_vids = [str(v) for v in npz.array("video_ids")]
        src_of = np.full(n, -1, dtype=np.int64)
        for i, v in enumerate(run_vids):
            r = row.get(v)
            if r is not None:
                src_of[r] = i
        coverage[run.model_name] = src_of >= 0
        members = {m: f"scores_{m}" for m in MODALITIES if f"scores_{m}" in npz.names}
        kind = "scores"
        if not members:
            members = {m: f"labels_{m}" for m in MODALITIES if f"labels_{m}" in npz.names}
            kind = "labels"
        for member in members.values():
            if npz.shape(member) != (len(run_vids), C):
                raise PredictionFileError(
                    f"model run {run.model_name}: {member} has shape {npz.shape(member)}, expected "
                    f"({len(run_vids)}, {C})"
                )
        if kind == "scores":
            low = np.finfo(np.float32).min
            scores[run.model_name] = {m: reader(npz, x, src_of, low, np.float32) for m, x in members.items()}
        else:
            label_sets[run.model_name] = {m: reader(npz, x, src_of, False, bool) for m, x in members.items()}
    return PredictionRows(
        class_names=names, video_ids=vids, scores=scores, label_sets=label_sets, original=original, coverage=coverage
    )


def active_proposal_set(dataset) -> ProposalSet | None:
    return ProposalSet.objects.filter(dataset=dataset, active=True).first()


def proposal_lists(proposal_set: ProposalSet) -> dict[str, list[str]]:
    """{video_id: [class names]} in class-index order."""
    out: dict[str, list[str]] = {}
    for vid, name in (
        Proposal.objects.filter(proposal_set=proposal_set)
        .order_by("clip__video_id", "cls__index")
        .values_list("clip__video_id", "cls__name")
    ):
        out.setdefault(vid, []).append(name)
    return out


def runs_overview(dataset=None) -> list[ModelRun]:
    qs = ModelRun.objects.select_related("checkpoint", "dataset").order_by("dataset__name", "-created_at")
    if dataset is not None:
        qs = qs.filter(dataset=dataset)
    return list(qs)
