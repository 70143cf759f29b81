"""The gold standard: in-house expert annotations, their majority, coverage of the class list, CSV import."""

from __future__ import annotations

import csv
import random
from pathlib import Path

from django.conf import settings
from django.db import transaction

from catalog.core.vocabulary import META_LABELS, label_ticks, modality_from_flags
from catalog.errors import ImportFailed, ValidationError
from catalog.models import Clip, GoldLabel
from catalog.observability import count_answer_save
from catalog.selectors.taxonomy import class_index, class_names, class_pks
from crowd.models import ExpertAnnotation
from crowd.services.assignments import _bool_or_none, clean_labels

ORIGINAL_KEYS = ("original_present", "original_audible", "original_visible")
IGNORED_KEYS = ("played", "watch_seconds", "comment")
EXPERT_KEYS = META_LABELS + ("labels",) + ORIGINAL_KEYS
GOLD_CSV_COLUMNS = ("id", "label", "original", "modality")
MODALITIES = ("A", "V", "AV", "-")
TRUE_WORDS, FALSE_WORDS = {"true", "1", "yes", "t", "y"}, {"false", "0", "no", "f", "n"}


def gold_min_experts() -> int:
    return int(getattr(settings, "GOLD_MIN_EXPERTS", 3))


def expert_annotation_save(clip: Clip, user, payload: dict) -> ExpertAnnotation:
    """Upsert one expert's annotation of a clip (full class list), then recompute the clip's gold labels."""
    if not isinstance(payload, dict):
        raise ValidationError("the body must be a JSON object with keys " + ", ".join(EXPERT_KEYS), field="body")
    extra = sorted(set(payload) - set(EXPERT_KEYS) - set(IGNORED_KEYS))
    if extra:
        raise ValidationError(f"unknown field(s) {', '.join(extra)}; allowed: {', '.join(EXPERT_KEYS)}", field=extra[0])
    clean = {key: _bool_or_none(payload, key) for key in META_LABELS + ORIGINAL_KEYS}
    clean["labels"] = clean_labels(payload.get("labels", []), class_index())
    with transaction.atomic():
        annotation, _ = ExpertAnnotation.objects.update_or_create(clip=clip, user=user, defaults=clean)
        gold_recompute(clip)
    count_answer_save("expert")
    return annotation


def _expert_ticks(ann: ExpertAnnotation, originals: set[str]) -> dict[str, tuple[bool, bool]]:
    ticks = label_ticks(ann.labels)
    if ann.original_present is not None:  # the explicit verification of the original label wins
        for name in originals:
            ticks[name] = (
                (ann.original_present and bool(ann.original_audible)),
                (ann.original_present and bool(ann.original_visible)),
            )
    return ticks


def majority_gold(annotations: list[dict[str, tuple[bool, bool]]], originals: set[str]) -> dict[str, str]:
    """class -> modality by strict majority per (class, audible) and (class, visible); originals always listed."""
    n = len(annotations)
    counts: dict[str, list[int]] = {}
    for ticks in annotations:
        for name, (audible, visible) in ticks.items():
            c = counts.setdefault(name, [0, 0])
            c[0] += audible
            c[1] += visible
    out = {}
    for name in set(counts) | originals:
        audible, visible = (2 * x > n for x in counts.get(name, [0, 0]))
        modality = modality_from_flags(audible, visible) or "-"
        if modality != "-" or name in originals:
            out[name] = modality
    return out


def gold_recompute(clip: Clip, min_experts: int | None = None) -> list[GoldLabel]:
    """Replace the clip's gold labels by the experts' majority once >= min_experts experts labelled it.

    With fewer experts nothing changes (imported gold stays) and [] is returned. The clip becomes a gold clip."""
    min_experts = gold_min_experts() if min_experts is None else min_experts
    anns = list(ExpertAnnotation.objects.filter(clip=clip))
    if len(anns) < max(min_experts, 1):
        return []
    originals = set(clip.original_labels.values_list("name", flat=True))
    gold = majority_gold([_expert_ticks(a, originals) for a in anns], originals)
    classes = class_pks()
    index = class_index()
    with transaction.atomic():
        GoldLabel.objects.filter(clip=clip).delete()
        rows = GoldLabel.objects.bulk_create(
            [
                GoldLabel(
                    clip=clip, cls_id=classes[name], modality=modality, original=name in originals, source="experts"
                )
                for name, modality in sorted(gold.items(), key=lambda kv: index[kv[0]])
            ]
        )
        if not clip.is_gold:
            Clip.objects.filter(pk=clip.pk).update(is_gold=True)
            clip.is_gold = True
    return rows


def _parse_bool(raw: str):
    value = raw.strip().lower()
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    return None


def gold_import_csv(dataset, path) -> int:
    """Import gold labels from `id,label,original,modality` (modality A/V/AV/-). All or nothing.

    Every problem is reported with its line number; the clips named get exactly the file's labels (replacing
    earlier gold labels) and become gold clips. Returns the number of rows imported."""
    path = Path(path)
    if not path.is_file():
        raise ImportFailed(f"{path}: no such file")
    classes = class_pks()
    errors: list[str] = []
    rows: list[tuple[str, str, bool, str, str]] = []
    seen: dict[tuple[str, str], int] = {}
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in (reader.fieldnames or [])]
            missing = [c for c in GOLD_CSV_COLUMNS if c not in header]
            if missing:
                raise ImportFailed(
                    f"{path}: missing column(s) {', '.join(missing)}; expected header "
                    f"{','.join(GOLD_CSV_COLUMNS)}; nothing was imported"
                )
            reader.fieldnames = header
            for lineno, row in enumerate(reader, start=2):
                vid = (row.get("id") or "").strip()
                label = (row.get("label") or "").strip()
                original = _parse_bool(row.get("original") or "")
                modality = (row.get("modality") or "").strip()
                where = f"{path.name}:{lineno}"
                if not vid:
                    errors.append(f"{where}: field 'id' is empty")
                if label not in classes:
                    errors.append(f"{where}: field 'label' is {label!r}, not a class of the taxonomy")
                if original is None:
                    errors.append(f"{where}: field 'original' is {row.get('original')!r}; allowed: True, False")
                if modality not in MODALITIES:
                    errors.append(f"{where}: field 'modality' is {modality!r}; allowed: A, V, AV, -")
                if (vid, label) in seen:
                    errors.append(f"{where}: clip {vid!r} label {label!r} repeats line {seen[(vid, label)]}")
                seen.setdefault((vid, label), lineno)
                rows.append((vid, label, bool(original), modality, where))
    except UnicodeDecodeError as exc:
        raise ImportFailed(f"{path}: not UTF-8 text ({exc}); nothing was imported")
    if not rows and not errors:
        raise ImportFailed(f"{path}: no rows; nothing was imported")
    clips = {c.video_id: c for c in Clip.objects.filter(dataset=dataset, video_id__in={r[0] for r in rows})}
    errors += [
        f"{where}: field 'id' is {vid!r}, not a clip of dataset {dataset.name} (import the clips first)"
        for vid, _, _, _, where in rows
        if vid and vid not in clips
    ]
    if errors:
        raise ImportFailed(f"{path}: {len(errors)} problem(s); nothing was imported", details=errors)
    with transaction.atomic():
        GoldLabel.objects.filter(clip__in=list(clips.values())).delete()
        GoldLabel.objects.bulk_create(
            [
                GoldLabel(clip=clips[vid], cls_id=classes[label], modality=modality, original=original, source="import")
                for vid, label, original, modality, _ in rows
            ]
        )
        Clip.objects.filter(pk__in=[c.pk for c in clips.values()]).update(is_gold=True)
    return len(rows)


def gold_coverage(dataset, *, rng: random.Random | None = None, max_suggestions: int = 50) -> dict:
    """How many of the classes the gold set covers (a present gold label), and random clips that would add the
    missing ones (one clip per missing class, picked among clips whose original label is that class)."""
    rng = rng or random.Random()
    names = class_names()
    covered = set(
        GoldLabel.objects.filter(clip__dataset=dataset)
        .exclude(modality="-")
        .values_list("cls__name", flat=True)
        .distinct()
    )
    missing = [n for n in names if n not in covered]
    by_class: dict[str, list[int]] = {}
    through = Clip.original_labels.through
    for clip_id, name in through.objects.filter(
        clip__dataset=dataset, clip__is_gold=False, taxonomyclass__name__in=missing
    ).values_list("clip_id", "taxonomyclass__name"):
        by_class.setdefault(name, []).append(clip_id)
    suggested: list[int] = []
    for name in missing:
        candidates = [c for c in sorted(by_class.get(name, [])) if c not in suggested]
        if candidates and len(suggested) < max_suggestions:
            suggested.append(rng.choice(candidates))
    return {"covered": len(names) - len(missing), "total": len(names), "missing": missing, "suggested_clips": suggested}
