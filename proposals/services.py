"""Writes of the proposals app: checkpoints, model runs (import / compute), proposal sets."""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time
import urllib.request
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from django.core.files.base import ContentFile, File
from django.db import connection, transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from benchmark.predictions import unknown_names_text
from catalog.errors import AvcrowdError
from catalog.models import Clip, Dataset, Operation
from catalog.selectors.gold import dataset_gold
from catalog.selectors.taxonomy import class_names, class_pks
from catalog.services.bulk import analyze, bulk_insert, copy_binary
from catalog.services.operations import OperationBar, operation_finish, operation_finish_staged
from catalog.services.uploads import staged_folder, staged_name, uploads_stage
from catalog.storage import parse_s3_url, s3_client

from . import gpu
from .core.evaluation import Gold, SearchSpace, evaluate, format_front, tune
from .core.predictions_io import (
    MODALITIES,
    PredictionArrays,
    PredictionFileError,
    judged_model_name,
    read_judged_files,
    read_predictions_file,
    to_npz_bytes,
    write_npz_stream,
)
from .core.strategy import ChunkedStrategy, ProposalResult, Strategy, StrategyError, apply_strategy
from .models import ARCHITECTURES, MODEL_NAME_RE, ModelCheckpoint, ModelRun, Proposal, ProposalSet, RunChunk
from .selectors import active_proposal_set, dataset_prediction_rows, dataset_predictions, dataset_runs

log = logging.getLogger(__name__)


class ProposalsError(AvcrowdError):
    """Bad input to a proposals service; the message names what is wrong and what is allowed."""


# ------------------------------------------------------------------------------------------------
# checkpoints
# ------------------------------------------------------------------------------------------------


def checkpoint_get(name: str) -> ModelCheckpoint:
    """The registered checkpoint of that name, or ProposalsError naming the registered ones."""
    ckpt = ModelCheckpoint.objects.filter(name=name).first()
    if ckpt is None:
        known = ", ".join(ModelCheckpoint.objects.order_by("name").values_list("name", flat=True)) or "none"
        raise ProposalsError(f"unknown checkpoint {name!r}; registered: {known}", field="checkpoint")
    return ckpt


def checkpoint_register(name: str, architecture: str, path: str = "", config: dict | None = None) -> ModelCheckpoint:
    allowed = [a for a, _ in ARCHITECTURES]
    if architecture not in allowed:
        raise ProposalsError(
            f"unknown architecture {architecture!r}; allowed: {', '.join(allowed)}", field="architecture"
        )
    if path and not Path(path).exists():
        raise ProposalsError(f"checkpoint path {path} does not exist", field="path")
    if path:  # the weights must fit the architecture before anything is registered
        import models_zoo  # noqa: PLC0415 - torch, only when a file is registered

        try:
            models_zoo.check_checkpoint(architecture, config or {}, path)
        except (models_zoo.CheckpointError, ValueError) as exc:
            raise ProposalsError(str(exc), field="path") from None
    ckpt, _ = ModelCheckpoint.objects.update_or_create(
        name=name, defaults={"architecture": architecture, "path": path, "config": config or {}}
    )
    return ckpt


# ------------------------------------------------------------------------------------------------
# imported predictions
# ------------------------------------------------------------------------------------------------


CLASSES_FROM = "the taxonomy (python manage.py load_taxonomy; VGGSounder's classes.csv)"


def run_import(
    dataset: Dataset,
    name: str,
    path,
    *,
    allow_unknown_clips: bool = False,
    strict: bool = False,
    prepared: tuple | None = None,
) -> ModelRun:
    """Import a prediction file (VGGSounder pickle, CSV/JSONL label list, .npz) or the LLM-judged CSVs of one
    model (``path`` a list: one per input, in folders a/, v/, av/) as the run (``name``, dataset); an existing run
    of that name is replaced. Validates everything first; a refused import changes nothing. Class names outside
    the taxonomy are skipped and listed in the run's ``errors`` with their counts, or refused with ``strict``. The
    name is kept as given (gemini-1.5-flash): letters, digits, '.', '-', '_'. ``prepared``: what
    :func:`run_import_prepare` returned for the same arguments (files checked before any is imported)."""
    arrays, unknown = prepared or run_import_prepare(
        dataset, name, path, allow_unknown_clips=allow_unknown_clips, strict=strict
    )
    with transaction.atomic():
        run = ModelRun.objects.filter(dataset=dataset, external_name=name).first()
        if run is None:
            run = ModelRun(dataset=dataset, external_name=name)
        elif run.artifact:
            run.artifact.delete(save=False)
        run.kind = arrays.kind
        run.modalities = arrays.modalities
        run.status = ModelRun.DONE
        run.n_clips = run.n_done = len(arrays.video_ids)
        run.errors = [
            {"class_name": n, "count": c, "error": "unknown class name, skipped"}
            for n, c in sorted(arrays.unknown_names.items(), key=lambda kv: (-kv[1], kv[0]))[:1000]
        ] + [{"video_id": v, "error": "not in dataset, skipped"} for v in unknown[:1000]]
        run.started_at = run.finished_at = timezone.now()
        run.clips_per_s = None
        run.artifact.save(f"{dataset.name}-{name}.npz", ContentFile(to_npz_bytes(arrays)), save=False)
        run.save()
    return run


def run_import_prepare(
    dataset: Dataset, name: str, path, *, allow_unknown_clips: bool = False, strict: bool = False
) -> tuple[PredictionArrays, list[str]]:
    """Read and check what :func:`run_import` would import (nothing is written): ``(arrays, clip ids not in the
    dataset and skipped)``; bad input raises :class:`ProposalsError`."""
    if not re.fullmatch(MODEL_NAME_RE, name or ""):
        raise ProposalsError(
            f"model name {name!r} is not allowed: 1-100 characters, letters, digits, '.', '-' and '_', starting "
            "with a letter or digit"
        )
    names = class_names()
    try:
        if isinstance(path, (list, tuple)):
            arrays = read_judged_files(path, names, strict=strict, classes_from=CLASSES_FROM)
            path = ", ".join(str(p) for p in path)
        else:
            arrays = read_predictions_file(path, names, strict=strict, classes_from=CLASSES_FROM)
    except (PredictionFileError, StrategyError) as exc:
        raise ProposalsError(str(exc)) from None
    known = set(Clip.objects.filter(dataset=dataset).values_list("video_id", flat=True))
    unknown = [v for v in arrays.video_ids if v not in known]
    if unknown and not allow_unknown_clips:
        raise ProposalsError(
            f"{path}: {len(unknown)} clip id(s) are not in dataset {dataset.name}, e.g. {unknown[:5]} "
            f"(import the clips first, or pass --allow-unknown-clips to skip them)"
        )
    if unknown:
        keep = np.array([v in known for v in arrays.video_ids])
        arrays = PredictionArrays(
            [v for v in arrays.video_ids if v in known],
            arrays.class_names,
            {m: a[keep] for m, a in arrays.scores.items()},
            {m: a[keep] for m, a in arrays.labels.items()},
            arrays.unknown_names,
            arrays.not_judged,
        )
    if not arrays.video_ids:
        raise ProposalsError(f"{path}: no predictions for clips of dataset {dataset.name}")
    arrays.class_names = list(names)
    return arrays, unknown


# ------------------------------------------------------------------------------------------------
# computed predictions (GPU workers)
# ------------------------------------------------------------------------------------------------


def run_prepare(
    dataset: Dataset,
    checkpoint: ModelCheckpoint,
    *,
    chunk_size: int = 256,
    modalities: list[str] | None = None,
    restart: bool = False,
) -> tuple[ModelRun, list[int]]:
    """Create (or resume) the run of ``checkpoint`` on ``dataset``: one RunChunk per ``chunk_size`` clips. Returns
    the run and the ids of the chunks still to compute (proposals.tasks.run_start queues them on ``gpu``); chunks
    already done are not redone, and a run with nothing left is finalized here."""

    if chunk_size < 1:
        raise ProposalsError(
            f"chunk size {chunk_size} is not allowed; allowed: a whole number of clips >= 1", field="chunk_size"
        )
    mods = list(modalities or MODALITIES)
    bad = [m for m in mods if m not in MODALITIES]
    if bad:
        raise ProposalsError(f"unknown modalities {bad}; allowed: {', '.join(MODALITIES)}", field="modalities")
    vids = list(Clip.objects.filter(dataset=dataset).order_by("video_id").values_list("video_id", flat=True))
    if not vids:
        raise ProposalsError(f"dataset {dataset.name} has no clips")
    with transaction.atomic():
        run, created = ModelRun.objects.select_for_update().get_or_create(
            dataset=dataset,
            checkpoint=checkpoint,
            defaults={"chunk_size": chunk_size, "modalities": mods, "kind": ModelRun.SCORES},
        )
        same_clips = set(vids) == set(v for c in run.chunks.all() for v in c.video_ids)
        if run.status == ModelRun.DONE and same_clips and not restart:
            return run, []  # nothing to do: every clip of the dataset has been scored
        if restart or created or run.status == ModelRun.FAILED or not same_clips:
            for chunk in run.chunks.all():
                if chunk.artifact:
                    chunk.artifact.delete(save=False)
            run.chunks.all().delete()
            run.chunk_size, run.modalities = chunk_size, mods
            RunChunk.objects.bulk_create(
                RunChunk(run=run, index=i, video_ids=vids[s : s + chunk_size])
                for i, s in enumerate(range(0, len(vids), chunk_size))
            )
            run.n_done, run.errors, run.clips_per_s = 0, [], None
        run.n_clips = len(vids)
        run.status = ModelRun.RUNNING
        run.started_at = run.started_at or timezone.now()
        run.finished_at = None
        run.save()
        pending = list(run.chunks.exclude(status=RunChunk.DONE).values_list("id", flat=True))
    if not pending:
        run_finalize(run.pk)
    return run, pending


@contextmanager
def clip_local_path(clip: Clip):
    """A local filesystem path for the clip's media (downloaded to a temp file when remote)."""
    tmp = None
    try:
        if clip.media:
            try:
                yield clip.media.path
                return
            except NotImplementedError:  # remote storage (S3)
                suffix = Path(clip.media.name).suffix or ".mp4"
                fd, tmp = tempfile.mkstemp(suffix=suffix)
                with os.fdopen(fd, "wb") as out, clip.media.open("rb") as src:
                    shutil.copyfileobj(src, out)
                yield tmp
                return
        url = clip.media_url or ""
        if url.startswith(("http://", "https://", "s3://")):
            suffix = Path(url.split("?")[0]).suffix or ".mp4"
            fd, tmp = tempfile.mkstemp(suffix=suffix)
            with os.fdopen(fd, "wb") as out:
                if url.startswith("s3://"):  # the media store's endpoint and keys (catalog.storage)
                    s3_client().download_fileobj(*parse_s3_url(url), out)
                else:
                    with urllib.request.urlopen(url, timeout=60) as src:  # noqa: S310 - admin-provided URL
                        shutil.copyfileobj(src, out)
            yield tmp
            return
        yield url
    finally:
        if tmp:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def chunk_process(chunk_id: int, *, device: str | None = None) -> str:
    """Run the model on one chunk and store its scores; idempotent (a done chunk is skipped, a
    redone chunk overwrites its own result). Returns "done", "skipped" or "missing"."""
    chunk = RunChunk.objects.select_related("run__checkpoint", "run__dataset").filter(pk=chunk_id).first()
    if chunk is None:
        return "missing"
    if chunk.status == RunChunk.DONE:
        return "skipped"
    RunChunk.objects.filter(pk=chunk_id).update(attempts=F("attempts") + 1)
    run = chunk.run
    ckpt = run.checkpoint
    clips = {c.video_id: c for c in Clip.objects.filter(dataset=run.dataset, video_id__in=chunk.video_ids)}
    vids = [v for v in chunk.video_ids if v in clips]
    errors = [{"video_id": v, "error": "clip no longer in the dataset"} for v in chunk.video_ids if v not in clips]
    paths = []
    with ExitStack() as stack:  # temporary downloads live until the model has read them
        for v in vids:
            try:
                paths.append(stack.enter_context(clip_local_path(clips[v])))
            except Exception as exc:  # noqa: BLE001 - a clip whose media cannot be fetched
                paths.append("")
                errors.append({"video_id": v, "error": f"media not reachable: {exc}"})
        result = gpu.run_chunk(
            ckpt.architecture,
            ckpt.path,
            ckpt.config,
            paths,
            vids,
            run.modalities or list(MODALITIES),
            device=device,
            class_names=class_names(),
        )
    seen = {e["video_id"] for e in errors}
    errors += [e for e in result.errors if e["video_id"] not in seen]
    ok = result.ok
    arrays = PredictionArrays(
        [v for v, good in zip(vids, ok) if good], class_names(), {m: a[ok] for m, a in result.scores.items()}
    )
    with transaction.atomic():
        locked = RunChunk.objects.select_for_update().get(pk=chunk_id)
        if locked.status == RunChunk.DONE:  # another worker finished it meanwhile
            return "skipped"
        if locked.artifact:
            locked.artifact.delete(save=False)
        locked.artifact.save(f"run{run.pk}-chunk{locked.index}.npz", ContentFile(to_npz_bytes(arrays)), save=False)
        locked.status = RunChunk.DONE
        locked.n_done = len(chunk.video_ids)
        locked.seconds = result.seconds
        locked.errors = errors + [dict(e, warning="missing modality zero-filled") for e in result.flags]
        locked.save()
        _run_progress(run.pk)
    return "done"


def _run_progress(run_id: int) -> None:
    run = ModelRun.objects.select_for_update().get(pk=run_id)
    done = list(run.chunks.filter(status=RunChunk.DONE).values_list("n_done", "seconds"))
    run.n_done = sum(n for n, _ in done)
    secs = sum(s or 0.0 for _, s in done)
    run.clips_per_s = (run.n_done / secs) if secs > 0 else None
    run.save(update_fields=["n_done", "clips_per_s"])
    if len(done) == run.chunks.count():
        transaction.on_commit(lambda: run_finalize(run_id))


def run_finalize(run_id: int) -> ModelRun:
    """Assemble the chunk results into the run's artifact (once all chunks are done)."""
    with transaction.atomic():
        run = ModelRun.objects.select_for_update().get(pk=run_id)
        chunks = list(run.chunks.order_by("index"))
        if run.status == ModelRun.DONE or any(c.status != RunChunk.DONE for c in chunks):
            return run
        errors = [e for c in chunks for e in c.errors]
        done = [c for c in chunks if c.artifact]

        def member(c, name):
            with c.artifact.open("rb") as fh, np.load(fh, allow_pickle=False) as z:
                return z[name] if name in z.files else None

        # the run's artifact is written to a temporary file a member and a chunk at a time (each chunk's file
        # opened and closed in turn): no score matrix is held whole, however many clips the run has
        per_chunk = [[str(v) for v in member(c, "video_ids")] for c in done]
        vids = [v for part in per_chunk for v in part]
        names = class_names()
        vid_array, name_array = np.asarray(vids, dtype=np.str_), np.asarray(names, dtype=np.str_)
        members = [
            ("video_ids", vid_array.shape, vid_array.dtype, [vid_array]),
            ("class_names", name_array.shape, name_array.dtype, [name_array]),
        ]

        def scores(name):
            for c, part in zip(done, per_chunk, strict=True):
                block = member(c, name)  # gpu.run_chunk zero-fills a modality the model lacks; so does this
                yield block if block is not None else np.zeros((len(part), len(names)), np.float32)

        for m in run.modalities or list(MODALITIES):
            members.append((f"scores_{m}", (len(vids), len(names)), np.float32, scores(f"scores_{m}")))
        with tempfile.TemporaryFile(suffix=".npz") as tmp:
            write_npz_stream(tmp, members)
            tmp.seek(0)
            if run.artifact:
                run.artifact.delete(save=False)
            run.artifact.save(f"{run.dataset.name}-{run.model_name}.npz", File(tmp), save=False)
        run.errors = errors
        hard = [e for e in errors if "warning" not in e]
        run.status = ModelRun.DONE if vids else ModelRun.FAILED
        run.finished_at = timezone.now()
        run.n_done = sum(len(c.video_ids) for c in chunks)
        run.save()
        if hard:
            log.warning("run %s: %d clip(s) failed", run.pk, len(hard))
        for c in chunks:  # chunk results are merged; free their storage
            if c.artifact:
                c.artifact.delete(save=False)
                c.save(update_fields=["artifact"])
    return run


# ------------------------------------------------------------------------------------------------
# proposal sets
# ------------------------------------------------------------------------------------------------


def _strategy(strategy: Strategy | dict | str | None) -> Strategy:
    try:
        if isinstance(strategy, Strategy):
            strategy.validate()
            return strategy
        if isinstance(strategy, str):
            return Strategy.from_json(strategy)
        return Strategy.from_dict(strategy)
    except (StrategyError, TypeError) as exc:
        raise ProposalsError(f"bad strategy: {exc}", field="strategy") from None


def _finished_runs(dataset: Dataset, models: list[str] | None) -> list:
    """The dataset's finished model runs (optionally only those named); refuses when there are none."""
    try:
        runs = dataset_runs(dataset, names=models)
    except ValueError as exc:
        raise ProposalsError(str(exc)) from None
    if not runs:
        raise ProposalsError(f"dataset {dataset.name} has no finished model runs: import or compute predictions first")
    return runs


# clips per block when a proposal set is built: a few tens of MB of score and mask blocks, whatever the dataset
PROPOSAL_CHUNK_CLIPS = 4096


def proposal_set_create(
    dataset: Dataset,
    strategy: Strategy | dict | str | None = None,
    *,
    models: list[str] | None = None,
    activate: bool = True,
    chunk: int | None = None,
) -> ProposalSet:
    """Apply the strategy to all finished runs of the dataset and store the proposals (with
    provenance) as a new proposal set, evaluated against the gold standard.

    Memory stays bounded whatever the dataset: the runs' scores are read a block of ``chunk`` clips at a time
    (one pass for the consensus pool's global cut, then one that applies every rule), and each block's proposals
    are streamed into the store (COPY) before the next block is read. Logs the seconds of each phase."""
    strat = _strategy(strategy)
    runs = _finished_runs(dataset, models)
    phases = {"read": 0.0, "apply": 0.0, "store": 0.0, "evaluate": 0.0}
    t0 = time.perf_counter()
    with ExitStack() as stack:
        try:
            preds = dataset_prediction_rows(dataset, runs, stack)
            gold = Gold.from_labels(preds, dataset_gold(dataset))  # type: ignore[arg-type]
            plan = ChunkedStrategy(strat, preds, chunk=chunk or PROPOSAL_CHUNK_CLIPS)
        except (StrategyError, PredictionFileError) as exc:
            raise ProposalsError(str(exc)) from None
        clip_pk = dict(Clip.objects.filter(dataset=dataset).values_list("video_id", "id"))
        cls_pk = class_pks()
        phases["read"] = time.perf_counter() - t0  # clips, gold, the cut's pass over the scores
        summary = _ChunkSummary(preds.n_clips, gold)
        with transaction.atomic():
            if activate:
                ProposalSet.objects.filter(dataset=dataset, active=True).update(active=False)
            pset = ProposalSet.objects.create(dataset=dataset, strategy=strat.to_dict(), active=activate, evaluation={})
            pset.runs.set(runs)
            _lock_clips(dataset, clip_pk)
            t_store = time.perf_counter()

            def blocks():
                t = time.perf_counter()
                for start, part in plan.chunks():
                    summary.add(start, part)
                    phases["apply"] += time.perf_counter() - t
                    yield start, part
                    t = time.perf_counter()

            def rows():
                for _, part in blocks():
                    for vid, name, prov in part.records_json():
                        yield pset.pk, clip_pk[vid], cls_pk[name], prov

            try:
                if connection.vendor == "postgresql":
                    pset.n_proposals = _copy_binary_proposals(pset.pk, blocks(), preds, clip_pk, cls_pk)
                else:
                    pset.n_proposals = proposals_store(pset, rows(), clip_pk, cls_pk)
            except StrategyError as exc:
                raise ProposalsError(str(exc)) from None
            phases["store"] = time.perf_counter() - t_store - phases["apply"]
            t = time.perf_counter()
            pset.evaluation = summary.evaluate()
            phases["evaluate"] = time.perf_counter() - t
            pset.save(update_fields=["n_proposals", "evaluation"])
            t = time.perf_counter()
        phases["commit"] = time.perf_counter() - t
    t = time.perf_counter()
    analyze(Proposal)  # batch building reads a set of millions of fresh rows: plan with statistics
    phases["analyze"] = time.perf_counter() - t
    log.info(
        "proposal set %s of %s: %s proposals; %s",
        pset.pk,
        dataset.name,
        pset.n_proposals,
        ", ".join(f"{k} {v:.2f} s" for k, v in phases.items()),
        extra={"phases": phases},
    )
    return pset


def _lock_clips(dataset: Dataset, clip_pk: dict[str, int]) -> None:
    """Lock the dataset's clips until the set commits (PostgreSQL: FOR KEY SHARE, which waits for and blocks only a
    clip's deletion or key change, not its counters' updates; SQLite: the transaction's write lock already keeps
    every other writer out) and check that every clip read before the transaction still exists: what the per-row
    foreign-key check did at commit, once. A clip deleted meanwhile refuses the set (nothing is stored)."""
    lock = " FOR KEY SHARE" if connection.vendor == "postgresql" else ""
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT id FROM {connection.ops.quote_name(Clip._meta.db_table)} WHERE dataset_id = %s{lock}", [dataset.pk]
        )
        locked = np.fromiter((r[0] for r in cur.fetchall()), dtype=np.int64)
    wanted = np.fromiter(clip_pk.values(), dtype=np.int64, count=len(clip_pk))
    gone = wanted[~np.isin(wanted, locked)]
    if gone.size:
        names = {v: k for k, v in clip_pk.items()}
        shown = ", ".join(sorted(names[int(pk)] for pk in gone[:5]))
        raise ProposalsError(
            f"{gone.size} clip(s) of dataset {dataset.name} were deleted while the proposal set was being built "
            f"({shown}{', ...' if gone.size > 5 else ''}); nothing was stored: build the set again"
        )


def _copy_binary_proposals(pset_id: int, blocks, preds, clip_pk: dict[str, int], cls_pk: dict[str, int]) -> int:
    """PostgreSQL: stream every block's proposals into one binary COPY (catalog.services.bulk.copy_binary), built
    from arrays rather than one Python tuple per row and value: the fixed part of every row of a block (field count,
    then length + value of the set, clip and class ids, and the provenance's length) is one numpy record array,
    each distinct provenance (jsonb: version 1 + its JSON text) is encoded once for the whole set, and the rows go
    in row-major order (clip, class), so the indexes are filled in key order. The caller holds the transaction.
    Returns the number of rows."""
    clip_of_row = np.array([clip_pk[v] for v in preds.video_ids], dtype=np.int64)
    cls_of_col = np.array([cls_pk[name] for name in preds.class_names], dtype=np.int64)
    head = np.dtype(
        [
            ("fields", ">i2"),
            ("l_set", ">i4"),
            ("set", ">i8"),
            ("l_clip", ">i4"),
            ("clip", ">i8"),
            ("l_cls", ">i4"),
            ("cls", ">i8"),
            ("l_prov", ">i4"),
        ]
    )
    width = head.itemsize
    encoded: dict[str, bytes] = {}
    texts_of: dict = {}
    count = [0]

    def data():
        for start, part in blocks:
            ii, jj, group, texts = part.provenance_groups(texts_of)
            provs = [encoded.get(t) or encoded.setdefault(t, b"\x01" + t.encode()) for t in texts]
            rec = np.empty(ii.size, dtype=head)
            rec["fields"] = 4
            rec["l_set"] = rec["l_clip"] = rec["l_cls"] = 8
            rec["set"] = pset_id
            rec["clip"] = clip_of_row[start + ii]
            rec["cls"] = cls_of_col[jj]
            rec["l_prov"] = np.array([len(p) for p in provs], dtype=np.int64)[group] if provs else 0
            heads = rec.tobytes()
            parts: list = [b""] * (2 * ii.size)
            parts[0::2] = [heads[at : at + width] for at in range(0, len(heads), width)]
            parts[1::2] = [provs[g] for g in group.tolist()]
            count[0] += ii.size
            yield b"".join(parts)

    copy_binary(Proposal, ["proposal_set_id", "clip_id", "cls_id", "provenance"], data())
    return count[0]


class _ChunkSummary:
    """What the evaluation needs of a proposal set built block by block: every clip's list size and the gold
    clips' proposals and rule masks (gathered in ``gold.rows`` order)."""

    def __init__(self, n_clips: int, gold: Gold):
        self.gold = gold
        self.sizes = np.zeros(n_clips, dtype=np.int64)
        self.proposed: np.ndarray | None = None
        self.rule_masks: dict[str, np.ndarray] = {}
        self.result = None

    def add(self, start: int, part) -> None:
        stop = start + len(part.video_ids)
        self.sizes[start:stop] = part.proposed.sum(axis=1)
        c = part.proposed.shape[1]
        if self.proposed is None:
            self.proposed = np.zeros((self.gold.rows.size, c), dtype=bool)
            self.rule_masks = {r: np.zeros((self.gold.rows.size, c), dtype=bool) for r in part.rule_masks}
            self.class_names = part.class_names
        at = np.flatnonzero((self.gold.rows >= start) & (self.gold.rows < stop))
        local = self.gold.rows[at] - start
        self.proposed[at] = part.proposed[local]
        for r, m in part.rule_masks.items():
            self.rule_masks[r][at] = m[local]

    def evaluate(self) -> dict[str, Any]:
        k = self.gold.rows.size
        c = self.gold.labels.shape[1]
        result = ProposalResult(
            video_ids=[""] * k,
            class_names=[],
            proposed=self.proposed if self.proposed is not None else np.zeros((k, c), dtype=bool),
            rule_masks=self.rule_masks,
        )
        return evaluate(result, Gold(rows=np.arange(k), labels=self.gold.labels), sizes=self.sizes)


def proposal_set_request(
    dataset: Dataset, strategy: Strategy | dict | str | None = None, *, models: list[str] | None = None, user=None
) -> Operation:
    """Check the strategy and that finished runs exist (a refusal records nothing), and record the build as a
    running Operation (kind "proposals"); proposals.tasks.proposal_set_start queues it."""

    strat = _strategy(strategy)
    runs = _finished_runs(dataset, models)
    with transaction.atomic():
        op = Operation.objects.create(
            kind=Operation.PROPOSALS,
            dataset=dataset,
            total=1,
            started_by=user,
            message=f"applying the strategy to {len(runs)} model run(s) of {dataset.name}",
            summary={"strategy": strat.to_dict(), "models": models},
        )
    return op


def proposal_set_run(operation_id: int) -> Operation:
    """The background half of proposal_set_request (see catalog.services.operations.operation_finish)."""

    def work(op):
        pset = proposal_set_create(op.dataset, op.summary["strategy"], models=op.summary.get("models"))
        ev = pset.evaluation or {}
        recall = f", recall {ev['recall']:.3f} on gold" if ev.get("recall") is not None else ""
        return (
            f"proposal set #{pset.pk} of {op.dataset.name} is active: {pset.n_proposals} proposals, "
            f"mean {ev.get('mean_size', 0):.1f} per clip{recall}",
            {"proposal_set": pset.pk, "url": reverse("proposals:set-detail", args=[pset.pk])},
        )

    return operation_finish(operation_id, work)


def proposals_store(
    pset: ProposalSet, result, clip_pk: dict[str, int], cls_pk: dict[str, int], batch_size: int = 5000
) -> int:
    """Insert every proposal of `result` (with its provenance) into `pset` as a stream of plain rows: PostgreSQL
    COPY, chunked executemany on SQLite (catalog.services.bulk), each distinct provenance encoded once; the
    caller holds the transaction. Returns the number of rows. `result`: a ProposalResult, or an iterable of
    ready rows ``(proposal_set_id, clip_id, cls_id, provenance JSON)``. (batch_size: kept for callers.)"""
    if hasattr(result, "records_json"):
        rows = ((pset.pk, clip_pk[vid], cls_pk[name], prov) for vid, name, prov in result.records_json())
    else:
        rows = result
    return bulk_insert(Proposal, ["proposal_set_id", "clip_id", "cls_id", "provenance"], rows)


def proposals_evaluate(
    dataset: Dataset,
    strategy: Strategy | dict | str | None = None,
    *,
    models: list[str] | None = None,
    do_tune: bool = False,
    target: float = 0.90,
    n_random: int = 150,
    space: SearchSpace | None = None,
) -> dict[str, Any]:
    """Evaluate a strategy (default: the active set's, else the default recipe) against the gold
    standard; optionally tune it. Returns the report (and the tuner's front and pick)."""
    if not 0 < target <= 1:
        raise ProposalsError(f"target recall must be in (0, 1], got {target}", field="target")
    if strategy is None:
        active = active_proposal_set(dataset)
        strategy = active.strategy if active else None
    strat = _strategy(strategy)
    runs = _finished_runs(dataset, models)
    preds = dataset_predictions(dataset, runs)
    gold = Gold.from_labels(preds, dataset_gold(dataset))
    if gold.n_labels == 0:
        raise ProposalsError(
            f"dataset {dataset.name} has no gold labels (gold clips with modality != '-') to evaluate against"
        )
    t0 = time.perf_counter()
    try:
        report = evaluate(apply_strategy(strat, preds, keep_sources=False), gold)
    except StrategyError as exc:
        raise ProposalsError(str(exc)) from None
    report["strategy"] = strat.to_dict()
    report["models"] = [r.model_name for r in runs]
    if do_tune:
        out = tune(preds, gold, base=strat, space=space, target=target, n_random=n_random)
        report["tune"] = {
            "target": target,
            "target_met": out["target_met"],
            "n_trials": out["n_trials"],
            "front": [t.as_dict() for t in out["front"]],
            "chosen": out["chosen"].as_dict() if out["chosen"] else None,
            "front_text": format_front(out["front"], out["chosen"]),
        }
    report["seconds"] = time.perf_counter() - t0
    return report


def proposal_set_tune(pset: ProposalSet, target) -> ProposalSet:
    """Tune a set's strategy towards a target recall on gold (with the set's model runs) and store the tuner's
    front and pick in the set's evaluation ("tune"); the set's proposals stay as they are."""
    try:
        target = float(target)
    except (TypeError, ValueError):
        raise ProposalsError(
            f"target recall {target!r} is not a number; allowed: a number in (0, 1]", field="target"
        ) from None
    report = proposals_evaluate(
        pset.dataset, pset.strategy, do_tune=True, target=target, models=[r.model_name for r in pset.runs.all()] or None
    )
    with transaction.atomic():
        pset = ProposalSet.objects.select_for_update().get(pk=pset.pk)
        pset.evaluation = {**(pset.evaluation or {}), "tune": report["tune"]}
        pset.save(update_fields=["evaluation"])
    return pset


PREDICTION_SUFFIXES = (".pkl", ".pickle", ".csv", ".jsonl", ".ndjson", ".npz")
JUDGED_INPUTS = ("a", "v", "av")


def _upload_is_judged_csv(upload) -> bool:
    """Whether an uploaded CSV's header names a ``suggestions`` column (an LLM-judged prediction CSV)."""
    upload.seek(0)
    head = upload.read(4096)
    upload.seek(0)
    first = head.decode("utf-8-sig", errors="replace").splitlines()[:1]
    return bool(first) and "suggestions" in [h.strip().strip('"') for h in first[0].split(",")]


def run_import_request(
    dataset: Dataset,
    name: str,
    upload,
    *,
    user=None,
    allow_unknown_clips: bool = False,
    strict: bool = False,
    input: str = "",
) -> tuple[Operation, dict]:
    """`import_predictions` for an uploaded prediction file (pickle, CSV, JSONL or .npz; the extension says which):
    checked cheaply now (a file, its type, the model name; ``input`` a, v or av for an LLM-judged CSV as VGGSounder
    publishes them, ``video_id,suggestions,response``, one file per input), saved and read in the background
    (``run_import_staged``, queued by proposals.tasks.run_import_start). The model name defaults to the file name
    without its extension (and, for a judged CSV, without ``predictions-``). Class names outside the taxonomy are
    skipped and counted in the message, or refused with ``strict``. Returns the Operation and the task's keyword
    arguments."""
    if upload is None:
        raise ProposalsError("choose a predictions file to upload (field 'file')")
    file = staged_name(upload)
    suffix = Path(file).suffix.lower()
    if suffix not in PREDICTION_SUFFIXES:
        raise ProposalsError(f"{file}: unknown file type {suffix!r}; allowed: {', '.join(PREDICTION_SUFFIXES)}")
    input = (input or "").strip().lower()
    judged = suffix == ".csv" and _upload_is_judged_csv(upload)
    if input and input not in JUDGED_INPUTS:
        raise ProposalsError(f"input {input!r} is not allowed; allowed: {', '.join(JUDGED_INPUTS)}")
    if judged and not input:
        raise ProposalsError(
            f"{file} is an LLM-judged CSV (video_id,suggestions,response), which holds the answers for one input: "
            f"choose its input ({', '.join(JUDGED_INPUTS)}), as the folder it is published in (csv/a/, csv/v/, "
            "csv/av/)"
        )
    if input and not judged:
        raise ProposalsError(
            f"{file}: the input is chosen only for an LLM-judged CSV (a 'suggestions' column); this file names "
            "its inputs itself"
        )
    name = (name or "").strip() or (judged_model_name(file) if judged else Path(file).stem)
    if not re.fullmatch(MODEL_NAME_RE, name):
        raise ProposalsError(
            f"model name {name!r} is not allowed: 1-100 characters, letters, digits, '.', '-' and '_', starting "
            "with a letter or digit"
        )
    staged = uploads_stage([upload])
    op = Operation.objects.create(
        kind=Operation.IMPORT,
        dataset=dataset,
        started_by=user,
        message=f"queued: import predictions of {name!r} from {file} into dataset {dataset.name}",
        summary={"upload": file, "model": name, **({"input": input} if input else {})},
    )
    kwargs = {
        "dataset_id": dataset.pk,
        "staged": staged,
        "file": file,
        "name": name,
        "allow_unknown_clips": allow_unknown_clips,
        "strict": strict,
        "input": input,
    }
    return op, kwargs


def run_import_staged(
    operation_id: int,
    *,
    dataset_id: int,
    staged: str,
    file: str,
    name: str,
    allow_unknown_clips: bool = False,
    strict: bool = False,
    input: str = "",
) -> Operation:
    """Import the staged predictions file of ``run_import_request`` as the run ``name`` (a judged CSV read as
    ``csv/<input>/predictions-<name>.csv``), its steps on the Operation; the upload is removed when it ends."""

    def work(op):
        dataset = Dataset.objects.get(pk=dataset_id)
        bar = OperationBar(op.pk)
        bar.reset(total=1)
        bar.set_description(f"reading {file}" + (f" (input {input})" if input else ""))
        with staged_folder(staged) as folder:
            path = folder / file
            if input:
                placed = folder / "csv" / input / f"predictions-{name}.csv"
                placed.parent.mkdir(parents=True, exist_ok=True)
                path.replace(placed)
                run = run_import(dataset, name, [placed], allow_unknown_clips=allow_unknown_clips, strict=strict)
            else:
                run = run_import(dataset, name, str(path), allow_unknown_clips=allow_unknown_clips, strict=strict)
        bar.update(1)
        n_clips = sum(1 for e in run.errors if "video_id" in e)
        skipped = f", {n_clips} clip(s) not in the dataset skipped" if n_clips else ""
        unknown = {e["class_name"]: e["count"] for e in run.errors if "class_name" in e}
        if unknown:
            skipped += f"; {unknown_names_text(unknown)}"
        return (
            f"imported {run.n_clips} clips of {name!r} ({run.kind}: {', '.join(run.modalities)}){skipped} into "
            f"dataset {dataset.name}",
            {"run": run.pk, "model": name, "clips": run.n_clips, "url": reverse("proposals:overview")},
        )

    return operation_finish_staged(operation_id, staged, work)
