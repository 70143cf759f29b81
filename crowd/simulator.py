"""Crowd simulator: simulated workers answer real batches through the same services the HIT page uses
(assignment_start, answer_save, assignment_submit), so scoring, rejection, re-posting (batches re-open when an
assignment is rejected), blocking, merging and releases run exactly as in production.

Profiles (probabilities per atom of the truth; "fa" = false alarm on a proposed class that is not in the truth):
  diligent       hears/sees 92 % of true atoms, 1 % false alarms, meta right 95 %, adds missing classes
  careless       65 % recall, 5 % false alarms, meta right 75 %
  spammer        ticks proposals at random (30 %), random flags and meta
  audio-biased   audible recall 90 %, visible recall 25 %
  visual-biased  visible recall 90 %, audible recall 25 %
  typical        the average annotator of labels.core.simcrowd's calibration (issue 15): audible recall 74 %, visible
                 83 %, 2.3 % false alarms, marks an audible-only class visible too 25 % of the time, meta right 85 %
Mix "calibrated": 70 % typical, 17 % careless, 10 % diligent, 3 % spammers (the calibrated array simulator puts
~6-9 % of assignments below 0.25 catch F1 with a similar spread; docs/benchmarks.md "Label quality").
"""

from __future__ import annotations

import csv
import os
import random
from dataclasses import dataclass

from catalog.core.label_csv import read_label_csv
from catalog.core.vocabulary import META_LABELS
from catalog.errors import AvcrowdError, Forbidden, ValidationError
from catalog.models import Clip, GoldLabel
from catalog.selectors.taxonomy import class_names as taxonomy_names
from catalog.selectors.taxonomy import class_pks
from crowd.models import Batch, BatchItem, Worker
from crowd.services.assignments import answer_save, assignment_start, assignment_submit
from crowd.services.batches import batches_create


@dataclass(frozen=True)
class Profile:
    name: str
    recall_a: float
    recall_v: float
    false_alarm: float
    meta_accuracy: float
    add_missing: float = 0.0
    random_ticks: bool = False
    cross_modal: float = 0.0  # P(marks a true audible-only class visible too)


PROFILES = {
    "diligent": Profile("diligent", 0.92, 0.92, 0.01, 0.95, add_missing=0.5),
    "careless": Profile("careless", 0.65, 0.65, 0.05, 0.75),
    "spammer": Profile("spammer", 0.0, 0.0, 0.3, 0.5, random_ticks=True),
    "audio-biased": Profile("audio-biased", 0.9, 0.25, 0.02, 0.85),
    "visual-biased": Profile("visual-biased", 0.25, 0.9, 0.02, 0.85),
    "typical": Profile("typical", 0.74, 0.83, 0.023, 0.85, add_missing=0.28, cross_modal=0.25),
}
MIXES = {
    "mixed": {"diligent": 0.5, "careless": 0.2, "spammer": 0.1, "audio-biased": 0.1, "visual-biased": 0.1},
    "calibrated": {"typical": 0.7, "careless": 0.17, "diligent": 0.1, "spammer": 0.03},
    **{name: {name: 1.0} for name in PROFILES},
}


def profile_mix(profile: str) -> dict[str, float]:
    """A named mix (MIXES) or an explicit one like "diligent:0.6,spammer:0.4"."""
    if profile in MIXES:
        return MIXES[profile]
    mix = {}
    for part in profile.split(","):
        name, _, weight = part.strip().partition(":")
        try:
            w = float(weight) if weight else 1.0
        except ValueError:
            w = -1
        if name not in PROFILES or w < 0:
            raise ValidationError(
                f"profile {profile!r} is not allowed; use one of {', '.join(MIXES)} or "
                f"NAME:WEIGHT,... with NAME in {', '.join(PROFILES)}",
                field="profile",
            )
        mix[name] = w
    if not sum(mix.values()):
        raise ValidationError(f"profile {profile!r} has no positive weight", field="profile")
    return mix


def allocate(mix: dict[str, float], n: int) -> list[str]:
    """Deterministic worker counts per profile (largest remainder), e.g. mixed x 50 -> 25/10/5/5/5."""
    total = sum(mix.values())
    exact = {k: n * w / total for k, w in mix.items()}
    counts = {k: int(v) for k, v in exact.items()}
    for k in sorted(exact, key=lambda k: exact[k] - counts[k], reverse=True)[: n - sum(counts.values())]:
        counts[k] += 1
    return [k for k in mix for _ in range(counts[k])]


def read_truth_csv(path, class_names) -> tuple[dict, dict]:
    """Truth from a VGGSounder-layout CSV (validated like import_labels): (labels, meta) by video id."""
    with open(path, newline="", encoding="utf-8") as fh:
        clips, rows = read_label_csv(fh, class_names, where=str(path))
    labels: dict[str, dict[str, str]] = {vid: {} for vid in clips}
    for vid, label, modality in rows:
        labels[vid][label] = modality
    meta = {vid: dict(zip(META_LABELS, flags)) for vid, flags in clips.items()}
    return labels, meta


def truth_load(source: str, class_names, dataset=None) -> tuple[dict, dict]:
    """A VGGSounder-layout CSV path, or "original": each clip's original dataset labels, audible, no meta labels
    (for demos). A release as the truth is read by labels.services.simulation.simulation_truth."""
    if source == "original":
        if dataset is None:
            raise ValidationError("--truth original needs a dataset", field="truth")
        labels = {}
        for vid, name in Clip.objects.filter(dataset=dataset).values_list("video_id", "original_labels__name"):
            labels.setdefault(vid, {})
            if name:
                labels[vid][name] = "A"
        return labels, {vid: {} for vid in labels}
    if os.path.exists(source):
        return read_truth_csv(source, class_names)
    raise ValidationError(f"truth {source!r} is neither 'original' nor an existing CSV file", field="truth")


def simulated_answer(
    profile: Profile, truth: dict[str, str], meta: dict, proposals: list[str], class_names, rng: random.Random
) -> dict:
    """One clip's answer payload (as the HIT page sends it) for a worker of `profile`."""
    labels = []
    for name in proposals:
        mod = truth.get(name)
        if profile.random_ticks:
            aud = rng.random() < profile.false_alarm
            vis = rng.random() < profile.false_alarm
        elif mod:
            aud = "A" in mod and rng.random() < profile.recall_a
            vis = "V" in mod and rng.random() < profile.recall_v
            # biased workers put what they notice on their favoured channel
            if profile.name == "audio-biased" and "V" in mod and not aud and rng.random() < 0.3:
                aud = True
            if profile.name == "visual-biased" and "A" in mod and not vis and rng.random() < 0.3:
                vis = True
            if mod == "A" and profile.cross_modal and rng.random() < profile.cross_modal:
                vis = True
        else:
            aud = rng.random() < profile.false_alarm
            vis = rng.random() < profile.false_alarm / 2
        labels.append({"name": name, "audible": bool(aud), "visible": bool(vis)})
    shown = set(proposals)
    for name, mod in truth.items():  # classes found with the search box
        if name not in shown and rng.random() < profile.add_missing:
            labels.append({"name": name, "audible": "A" in mod, "visible": "V" in mod})
    payload = {"played": True, "watch_seconds": round(rng.uniform(8, 20), 1), "labels": labels}
    for key in META_LABELS:
        right = bool(meta.get(key, False))
        payload[key] = right if rng.random() < profile.meta_accuracy else not right
    return payload


def _proposals_for(truth: dict, class_names, n: int, rng: random.Random) -> list[str]:
    names = list(truth)[:n]
    others = [c for c in class_names if c not in truth]
    names += rng.sample(others, max(0, n - len(names)))
    rng.shuffle(names)
    return names


def simulate_crowd(
    dataset,
    truth_source: str,
    *,
    workers: int = 50,
    profile: str = "mixed",
    seed: int = 0,
    proposals_per_clip: int = 10,
    max_assignments: int | None = None,
    log=None,
    truth: tuple[dict, dict] | None = None,
) -> dict:
    """Drive the real pipeline with simulated workers until every batch has its annotators (or the budget of
    assignments / willing workers runs out). Returns a summary. `truth` is (labels, meta) by video id already
    loaded (e.g. from a release); without it `truth_source` is read by truth_load."""
    mix = profile_mix(profile)
    if workers < 1:
        raise ValidationError("--workers must be at least 1", field="workers")
    log = log or (lambda msg: None)
    rng = random.Random(seed)
    names = taxonomy_names()
    truth, truth_meta = truth if truth is not None else truth_load(truth_source, names, dataset)
    clips = {c.video_id: c for c in Clip.objects.filter(dataset=dataset)}
    missing = [v for v in clips if v not in truth]
    if not clips:
        raise ValidationError(f"dataset {dataset.name} has no clips", field="dataset")
    if missing:
        raise ValidationError(
            f"{len(missing)} clip(s) of dataset {dataset.name} have no truth in {truth_source}",
            field="truth",
            details=missing[:20],
        )

    # gold clips without gold labels get them from the truth (the simulated "experts")
    cls = class_pks()
    seeded_gold = 0
    for vid, clip in clips.items():
        if clip.is_gold and truth[vid] and not GoldLabel.objects.filter(clip=clip).exists():
            GoldLabel.objects.bulk_create(
                [GoldLabel(clip=clip, cls_id=cls[n], modality=m, source="import") for n, m in truth[vid].items()]
            )
            seeded_gold += 1
    if not Batch.objects.filter(dataset=dataset).exists():
        proposals = {vid: _proposals_for(truth[vid], names, proposals_per_clip, rng) for vid in clips}
        created = batches_create(dataset, proposals=proposals, rng=random.Random(seed))
        log(f"created {len(created)} batches with {proposals_per_clip} proposals per clip")

    pool = [(f"sim-{seed}-{i:03d}-{kind}", PROFILES[kind]) for i, kind in enumerate(allocate(mix, workers))]
    budget = max_assignments or workers * 50
    stats = {
        "assignments": 0,
        "approved": 0,
        "rejected": 0,
        "refused_starts": 0,
        "seeded_gold_clips": seeded_gold,
        "by_profile": {
            k: {"workers": 0, "assignments": 0, "approved": 0, "rejected": 0, "f1_sum": 0.0, "f1_n": 0}
            for k in PROFILES
        },
    }
    for _wid, prof in pool:
        stats["by_profile"][prof.name]["workers"] += 1
    active = list(pool)
    while stats["assignments"] < budget and active:
        open_batches = list(Batch.objects.filter(dataset=dataset, status=Batch.OPEN).order_by("created_at", "id"))
        if not open_batches:
            break
        rng.shuffle(active)
        progressed = False
        for wid, prof in list(active):
            if stats["assignments"] >= budget:
                break
            batch = rng.choice(open_batches)
            try:
                assignment = assignment_start(
                    batch, backend="simulated", worker_external_id=wid, external_assignment_id=f"{wid}-{batch.uuid}"
                )
            except Forbidden:
                stats["refused_starts"] += 1
                continue
            if assignment.status != "in_progress":
                continue
            items = BatchItem.objects.filter(batch=batch).select_related("clip").order_by("position")
            for item in items:
                vid = item.clip.video_id
                answer_save(
                    assignment,
                    vid,
                    simulated_answer(prof, truth[vid], truth_meta.get(vid, {}), list(item.proposals), names, rng),
                )
            done = assignment_submit(assignment, work_seconds=rng.uniform(200, 900))
            progressed = True
            stats["assignments"] += 1
            p = stats["by_profile"][prof.name]
            p["assignments"] += 1
            if done.status in ("approved", "rejected"):
                stats[done.status] += 1
                p[done.status] += 1
            if done.catch_f1 is not None:
                p["f1_sum"] += done.catch_f1
                p["f1_n"] += 1
            if done.worker and done.worker.is_blocked:
                active.remove((wid, prof))
            open_batches = [b for b in open_batches if Batch.objects.filter(pk=b.pk, status=Batch.OPEN).exists()]
            if not open_batches:
                break
        if not progressed:
            break
    for p in stats["by_profile"].values():
        p["mean_catch_f1"] = round(p["f1_sum"] / p["f1_n"], 4) if p["f1_n"] else None
        del p["f1_sum"], p["f1_n"]

    stats["blocked_workers"] = Worker.objects.filter(
        backend="simulated", is_blocked=True, external_id__startswith=f"sim-{seed}-"
    ).count()
    stats["open_batches_left"] = Batch.objects.filter(dataset=dataset, status=Batch.OPEN).count()
    return stats


def truth_as_csv_rows(truth: dict, meta: dict):
    """Helper for tests/demos: VGGSounder-layout rows of a truth dict."""
    out = []
    for vid in sorted(truth):
        for label in sorted(truth[vid]):
            m = meta.get(vid, {})
            out.append(
                [
                    vid,
                    label,
                    truth[vid][label],
                    m.get("background_music", False),
                    m.get("static_image", False),
                    m.get("voice_over", False),
                ]
            )
    return out


def write_truth_csv(path, truth: dict, meta: dict):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["video_id", "label", "modality", "background_music", "static_image", "voice_over"])
        w.writerows(truth_as_csv_rows(truth, meta))


__all__ = ["PROFILES", "MIXES", "simulate_crowd", "simulated_answer", "truth_load", "write_truth_csv", "AvcrowdError"]
