"""Reading a release's content and comparing two releases clip by clip."""

import logging

from catalog.core.vocabulary import META_LABELS
from labels.models import (
    ImmutableReleaseError,  # noqa: F401  (re-exported for callers)
    Release,
    ReleaseClip,
    ReleaseLabel,
)

log = logging.getLogger(__name__)

log = logging.getLogger(__name__)


def release_content(release: Release):
    """(meta, labels) of a release in row order: meta {video_id: (bm, vo, si)}, labels {video_id: {class:
    modality}} with every clip (clips without labels map to {})."""
    meta = {
        vid: (bm, vo, si)
        for vid, bm, vo, si in ReleaseClip.objects.filter(release=release).values_list(
            "video_id", "background_music", "voice_over", "static_image"
        )
    }
    labels: dict[str, dict[str, str]] = {vid: {} for vid in meta}
    for vid, name, mod in (
        ReleaseLabel.objects.filter(release=release)
        .values_list("release_clip__video_id", "name", "modality")
        .iterator(chunk_size=10000)
    ):
        labels[vid][name] = mod
    return meta, labels


def release_diff(a: Release, b: Release) -> dict:
    """What changed from release a to release b, per clip and in totals.

    Returns {"totals": {...}, "clips": {video_id: {"added": [(label, modality)], "removed": [...],
    "modality_changed": [(label, old, new)], "meta_changed": {meta: (old, new)}, "only_in": "a"|"b"|None}}}
    (clips without changes are omitted).
    """
    meta_a, lab_a = release_content(a)
    meta_b, lab_b = release_content(b)
    totals = {
        "clips_a": len(meta_a),
        "clips_b": len(meta_b),
        "clips_only_in_a": 0,
        "clips_only_in_b": 0,
        "clips_changed": 0,
        "labels_added": 0,
        "labels_removed": 0,
        "modality_changed": 0,
        "meta_changed": {m: 0 for m in META_LABELS},
    }
    clips = {}
    for vid in sorted(set(meta_a) | set(meta_b)):
        la, lb = lab_a.get(vid, {}), lab_b.get(vid, {})
        entry = {
            "added": sorted((n, lb[n]) for n in set(lb) - set(la)),
            "removed": sorted((n, la[n]) for n in set(la) - set(lb)),
            "modality_changed": sorted((n, la[n], lb[n]) for n in set(la) & set(lb) if la[n] != lb[n]),
            "meta_changed": {},
            "only_in": None,
        }
        if vid not in meta_a:
            entry["only_in"] = "b"
            totals["clips_only_in_b"] += 1
        elif vid not in meta_b:
            entry["only_in"] = "a"
            totals["clips_only_in_a"] += 1
        else:
            for j, m in enumerate(META_LABELS):
                if meta_a[vid][j] != meta_b[vid][j]:
                    entry["meta_changed"][m] = (meta_a[vid][j], meta_b[vid][j])
                    totals["meta_changed"][m] += 1
        totals["labels_added"] += len(entry["added"])
        totals["labels_removed"] += len(entry["removed"])
        totals["modality_changed"] += len(entry["modality_changed"])
        if entry["added"] or entry["removed"] or entry["modality_changed"] or entry["meta_changed"] or entry["only_in"]:
            clips[vid] = entry
            totals["clips_changed"] += 1
    return {"a": f"{a.dataset.name}/{a.name}", "b": f"{b.dataset.name}/{b.name}", "totals": totals, "clips": clips}


def release_diff_text(diff: dict, max_clips: int | None = 50) -> str:
    t = diff["totals"]
    lines = [
        f"{diff['a']} -> {diff['b']}",
        f"clips: {t['clips_a']} -> {t['clips_b']} ({t['clips_only_in_a']} only in a, {t['clips_only_in_b']} only "
        f"in b, {t['clips_changed']} changed)",
        f"labels added: {t['labels_added']}, removed: {t['labels_removed']}, modality changed: {t['modality_changed']}",
        "meta changed: " + ", ".join(f"{m} {n}" for m, n in t["meta_changed"].items()),
    ]
    for i, (vid, e) in enumerate(diff["clips"].items()):
        if max_clips is not None and i >= max_clips:
            lines.append(f"... {len(diff['clips']) - max_clips} more clips (use --all)")
            break
        parts = []
        if e["only_in"]:
            parts.append(f"only in {e['only_in']}")
        parts += [f"+{n} ({m})" for n, m in e["added"]]
        parts += [f"-{n} ({m})" for n, m in e["removed"]]
        parts += [f"~{n} {o}->{nw}" for n, o, nw in e["modality_changed"]]
        parts += [f"{m} {o}->{nw}" for m, (o, nw) in e["meta_changed"].items()]
        lines.append(f"  {vid}: " + "; ".join(parts))
    return "\n".join(lines)
