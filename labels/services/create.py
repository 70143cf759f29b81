"""Creating label-set releases: merge the loaded votes, close over synonyms/superclasses, store an immutable release
(in the request, or as a background Operation); also re-queueing the clips that still need annotation. The
algorithms are pure (labels.core); releases are immutable: there is no update service, and the models refuse to
save an existing row."""

import logging
import time

import numpy as np
from django.db import IntegrityError, transaction
from django.urls import reverse

from catalog.core.taxonomy import closer
from catalog.core.vocabulary import META_LABELS, MODALITIES
from catalog.errors import NotFound, ValidationError
from catalog.memory import return_freed_memory
from catalog.models import Clip, Dataset, Operation, TaxonomyClass
from catalog.progress import NULL_BAR
from catalog.selectors.taxonomy import class_pks, relations
from catalog.services.bulk import analyze, bulk_insert
from catalog.services.operations import operation_finish
from crowd.models import Assignment, ClipAnswer, ExpertAnnotation
from crowd.services.batches import batches_create
from labels.core.agreement import agreement
from labels.core.merge import EM_METHODS, METHODS, merge
from labels.core.votes import MODALITY_NAMES
from labels.models import (
    ORIGIN_SEPARATOR,
    ImmutableReleaseError,  # noqa: F401  (re-exported for callers)
    Release,
    ReleaseClip,
    ReleaseLabel,
)
from labels.services.load import votes_load
from labels.services.quality import apply_worker_quality, release_quality_card

log = logging.getLogger(__name__)


log = logging.getLogger(__name__)


NEEDS_ANNOTATION_SAMPLE = 20  # clip ids of "needs annotation" kept in a release's stats, as examples


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


RELEASE_STEPS = ("loading votes", "merging", "auto-adding labels", "agreement", "storing")


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
    bar=NULL_BAR,
) -> Release:
    """Merge the dataset's approved annotations into a new immutable release.

    method: one of METHODS; params: {"k": 3, ...} passed to the merge. Gold clips that have gold labels take
    those labels (origin "override") when gold_override. Every label set is closed over the taxonomy's
    synonyms and superclasses (origin "auto", origin_source = the classes it came from). Clips with fewer
    than k approved annotations are left out and listed in stats["needs_annotation"]. timings: optional dict
    that receives the seconds spent in load / merge / closure / agreement / store. bar: a progress bar
    (catalog.progress) advanced per step of those five.
    """
    timings = {} if timings is None else timings
    t0 = time.perf_counter()
    bar.reset(total=len(RELEASE_STEPS))

    def step(done: str):
        bar.update(1)
        nxt = RELEASE_STEPS.index(done) + 1
        if nxt < len(RELEASE_STEPS):
            bar.set_description(RELEASE_STEPS[nxt])

    bar.set_description(RELEASE_STEPS[0])

    name, params = _check_request(dataset, name, method, params)
    loaded = votes_load(dataset, include_experts=include_experts, with_proposals=True)
    return_freed_memory()  # the load's query texts and rows: not resident under the merge's arrays
    votes = loaded.votes
    timings["load"] = time.perf_counter() - t0
    step("loading votes")
    if loaded.counts["crowd_annotations"] == 0 and loaded.counts["expert_annotations"] == 0:
        raise _no_annotations(dataset)
    merge_params = {key: v for key, v in params.items() if key in ("k", "n_iter", "tol", "floor")}
    apply_worker_quality(loaded)  # one annotator-quality definition for releases and their quality cards
    t0 = time.perf_counter()
    result = merge(votes, method, gold=loaded.gold if method in EM_METHODS else None, **merge_params)
    timings["merge"] = time.perf_counter() - t0
    step("merging")
    t0 = time.perf_counter()
    synonyms, superclasses = relations()
    close = closer(synonyms, superclasses)  # the relations' reachable classes, found once
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
    # the merged meta labels in release order: one bool array, not a list per clip
    meta_row = np.full(votes.n_clips, -1, dtype=np.int64)
    meta_row[result.clips] = np.arange(len(result.clips))
    clip_meta = result.meta[meta_row[np.asarray(order_clips, dtype=np.int64)]].reshape(-1, 3).astype(bool)
    del meta_row
    label_rows = []  # (clip position, name, modality, origin, origin_source)
    joined: dict[tuple, str] = {}  # each distinct origin_source string once (~370k auto labels at 150k clips)
    for pos, c in enumerate(order_clips):
        closed = close(merged.pop(c))  # each clip's dict freed once closed
        base_origin = ReleaseLabel.OVERRIDE if c in overridden else ReleaseLabel.HUMAN
        for label in sorted(closed):
            modality, sources = closed[label]
            if sources:
                key = tuple(sources)
                source = joined.get(key)
                if source is None:
                    source = joined[key] = ORIGIN_SEPARATOR.join(sources)
                label_rows.append((pos, label, modality, ReleaseLabel.AUTO, source))
            else:
                label_rows.append((pos, label, modality, base_origin, "gold" if c in overridden else ""))
    del merged, joined
    return_freed_memory()
    timings["closure"] = time.perf_counter() - t0
    step("auto-adding labels")
    t0 = time.perf_counter()

    stats = release_stats(clip_meta, label_rows, len(order_clips))
    needs = result.needs_annotation
    with_some = needs[result.n_annotations[needs] > 0]
    stats["needs_annotation"] = int(len(needs))
    stats["needs_annotation_with_some"] = int(len(with_some))
    # counts and a sample, not every id: a release made early in a 150k-clip project would store megabytes of ids
    # (release_requeue_needs_annotation finds them again from the release's clips)
    stats["needs_annotation_sample"] = [clip_ids[c] for c in needs[:NEEDS_ANNOTATION_SAMPLE].tolist()]
    stats["gold_overridden_clips"] = len(overridden)
    stats["agreement"] = agreement(votes, clips=result.clips, class_names=class_names)
    timings["stats_agreement"] = time.perf_counter() - t0
    step("agreement")
    t0 = time.perf_counter()
    # measured fairly (leave-one-out on gold, experts' own annotations left out): not the gold-overridden labels
    stats["quality_card"] = release_quality_card(loaded, method, params["k"], merge_params)
    stats["duplicate_votes_ignored"] = int(result.duplicate.sum()) if result.duplicate is not None else 0
    timings["quality_card"] = time.perf_counter() - t0
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
        ((clip_ids[c], loaded.clip_pks[c], meta) for c, meta in zip(order_clips, clip_meta.tolist())),  # streamed
        label_rows,
    )
    timings["store"] = time.perf_counter() - t0
    step("storing")
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
            assignment__in=Assignment.objects.verified().filter(batch__dataset=dataset, status=Assignment.APPROVED),
            media_failed=False,
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


def _used(seen: set, value):
    """`value`, noted in `seen` (a reference _store checks once written); None is not a reference."""
    if value is not None:
        seen.add(value)
    return value


def _store(dataset, name, method, params, imported, source_file, source_counts, stats, user, clips, label_rows):
    """clips: [(video_id, clip pk or None, (bm, vo, si))] in order; label_rows: [(clip position, name, modality,
    origin, origin_source)] in order. One transaction, multi-row inserts."""
    cls_pk = class_pks()
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
        clip_pks: set = set()
        n_clips = bulk_insert(
            ReleaseClip,
            ["release_id", "video_id", "clip_id", "background_music", "voice_over", "static_image", "order"],
            (
                (release.pk, vid, _used(clip_pks, pk), bool(meta[0]), bool(meta[1]), bool(meta[2]), i)
                for i, (vid, pk, meta) in enumerate(clips)
            ),
        )
        pk_by_order = np.zeros(n_clips, dtype=np.int64)  # release clip id by order: an array, not a 150k dict
        for order, pk in ReleaseClip.objects.filter(release=release).values_list("order", "id").iterator(20000):
            pk_by_order[order] = pk
        cls_used: set = set()
        bulk_insert(
            ReleaseLabel,
            ["release_id", "release_clip_id", "cls_id", "name", "modality", "origin", "origin_source", "order"],
            (
                (release.pk, int(pk_by_order[pos]), _used(cls_used, cls_pk[lab]), lab, mod, origin, src, i)
                for i, (pos, lab, mod, origin, src) in enumerate(label_rows)
            ),
        )
        _check_references(release, cls_used, pk_by_order, clip_pks)
    analyze(ReleaseClip, ReleaseLabel)  # the release pages and exports plan with fresh statistics
    return release


def _check_references(release: Release, cls_ids: set, release_clip_ids: np.ndarray, clip_ids: set) -> None:
    """Every label of the new release names an existing class and a clip of this release, every release clip an
    existing clip (or none), checked from what _store wrote, with two small queries, instead of the database's
    per-row foreign-key triggers (the release tables have none, see labels.models). A set-based join over the new
    rows is no substitute: they have no planner statistics yet, and one plan took minutes. Raises inside _store's
    transaction, so nothing is stored."""
    existing_cls = set(TaxonomyClass.objects.filter(pk__in=cls_ids).values_list("pk", flat=True))
    no_class = len(cls_ids - existing_cls)
    no_release_clip = int((release_clip_ids <= 0).sum())
    no_clip = 0
    if clip_ids:
        existing = np.fromiter(
            Clip.objects.filter(dataset_id=release.dataset_id).values_list("pk", flat=True).iterator(20000),
            dtype=np.int64,
        )
        wanted = np.fromiter(clip_ids, dtype=np.int64, count=len(clip_ids))
        no_clip = int((~np.isin(wanted, existing)).sum())
    if no_class or no_release_clip or no_clip:
        raise IntegrityError(
            f"release {release.name!r} was not stored: {no_class} class(es) of its labels no longer exist "
            f"(was the taxonomy reloaded meanwhile?), {no_release_clip} label(s) point outside the release, "
            f"{no_clip} clip(s) were deleted while it was made; try again"
        )


def release_requeue_needs_annotation(release: Release):
    """Send the clips a release reported as "needs annotation" back to the queue as new batches."""
    ids = release.stats.get("needs_annotation_ids")
    if ids is not None:  # a release stored before the stats kept only a sample
        clips = list(Clip.objects.filter(dataset=release.dataset, video_id__in=ids, is_gold=False))
    else:  # the dataset's clips of the time that the release left out (one subquery, no list of ids)
        clips = list(
            Clip.objects.filter(dataset=release.dataset, is_gold=False, created_at__lte=release.created_at)
            .exclude(pk__in=ReleaseClip.objects.filter(release=release, clip__isnull=False).values("clip_id"))
            .order_by("video_id")
        )
    if not clips:
        return []
    return batches_create(release.dataset, clips=clips)


def release_get(dataset_name: str, name: str) -> Release:
    try:
        return Release.objects.select_related("dataset").get(dataset__name=dataset_name, name=name)
    except Release.DoesNotExist:
        raise NotFound(f"no release {name!r} in dataset {dataset_name!r}") from None
