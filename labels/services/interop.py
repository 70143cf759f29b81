"""Exports for other tools: the raw votes in crowd-kit's layout, and a release as a Hugging Face `datasets`
dataset (Parquet + a dataset card).

crowd-kit layout: one row per (worker, task, label), the columns its aggregators (MajorityVote, DawidSkene, ...)
read. Tasks are binary atoms, as our Dawid–Skene merge uses them: "<video_id>|<class>|audible",
"<video_id>|<class>|visible" for every class shown or ticked on the clip, and "<video_id>|<meta label>"; label is
1 (yes) or 0 (no). The votes are the ones every merge reads (`votes_load`): approved, verified work, one vote per
(worker, clip), plus in-house expert annotations.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from pathlib import Path

from django.contrib.auth import get_user_model
from django.utils import timezone

from catalog.core.vocabulary import META_LABELS, MODALITIES
from catalog.errors import ValidationError
from catalog.selectors.taxonomy import class_names
from crowd.models import Worker
from labels.models import Release, ReleaseClip, ReleaseLabel
from labels.services.load import votes_load

CROWDKIT_COLUMNS = ("worker", "task", "label")
TASK_SEPARATOR = "|"
HF_SPLIT = "test"
HF_DATA_FILE = f"data/{HF_SPLIT}-00000-of-00001.parquet"


# -- crowd-kit -----------------------------------------------------------------------------------------------


def _annotator_names(keys) -> list[str]:
    workers = dict(
        (pk, f"{backend}:{ext}")
        for pk, backend, ext in Worker.objects.filter(pk__in=[k[1] for k in keys if k[0] == "worker"]).values_list(
            "pk", "backend", "external_id"
        )
    )
    users = dict(
        get_user_model().objects.filter(pk__in=[k[1] for k in keys if k[0] == "expert"]).values_list("pk", "username")
    )
    out = []
    for kind, ident in keys:
        if kind == "expert":
            out.append(f"expert:{users.get(ident, ident)}")
        else:
            out.append(workers.get(ident, f"{kind}:{ident}"))
    return out


def votes_crowdkit_rows(dataset):
    """(worker, task, label) rows of the dataset's votes (see module doc), clip by clip in video id order."""
    loaded = votes_load(dataset, include_experts=True, with_proposals=True)
    v = loaded.votes
    names = _annotator_names(loaded.annotator_keys)
    classes = loaded.class_names
    candidates: dict[int, set[int]] = defaultdict(set)
    for c, k in zip(v.cand_clip.tolist(), v.cand_class.tolist()):
        candidates[c].add(k)
    ticks: dict[int, dict[int, tuple[bool, bool]]] = defaultdict(dict)
    for a, k, aud, vis in zip(
        v.tick_ann.tolist(), v.tick_class.tolist(), v.tick_audible.tolist(), v.tick_visible.tolist()
    ):
        ticks[a][k] = (aud, vis)
        candidates[int(v.ann_clip[a])].add(k)
    by_clip: dict[int, list[int]] = defaultdict(list)
    for a, c in enumerate(v.ann_clip.tolist()):
        by_clip[c].append(a)
    sep = TASK_SEPARATOR
    for c in sorted(by_clip, key=lambda i: loaded.clip_ids[i]):
        vid = loaded.clip_ids[c]
        for a in by_clip[c]:
            worker = names[int(v.ann_worker[a])]
            for k in sorted(candidates[c]):
                aud, vis = ticks[a].get(k, (False, False))
                yield worker, f"{vid}{sep}{classes[k]}{sep}audible", int(aud)
                yield worker, f"{vid}{sep}{classes[k]}{sep}visible", int(vis)
            for j, meta in enumerate(META_LABELS):
                yield worker, f"{vid}{sep}{meta}", int(v.ann_meta[a, j])


def votes_crowdkit_csv(dataset, out) -> int:
    """Write the crowd-kit CSV (header worker,task,label) to a path or text file; returns the number of rows."""
    own = isinstance(out, (str, Path))
    fh = open(out, "w", newline="", encoding="utf-8") if own else out
    try:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(CROWDKIT_COLUMNS)
        n = 0
        for row in votes_crowdkit_rows(dataset):
            w.writerow(row)
            n += 1
    finally:
        if own:
            fh.close()
    if n == 0:
        raise ValidationError(
            f"dataset {dataset.name} has no approved, verified annotations to export", field="dataset"
        )
    return n


# -- Hugging Face datasets -------------------------------------------------------------------------------------


def _release_table(release: Release):
    import pyarrow as pa  # noqa: PLC0415 - pyarrow is heavy and only Parquet exports need it

    labels = defaultdict(list)
    for rc_id, name, mod, origin in (
        ReleaseLabel.objects.filter(release=release)
        .order_by("order")
        .values_list("release_clip_id", "name", "modality", "origin")
        .iterator(chunk_size=10000)
    ):
        labels[rc_id].append({"label": name, "modality": mod, "origin": origin})
    cols = {"video_id": [], "labels": [], "background_music": [], "voice_over": [], "static_image": []}
    for rc_id, vid, bm, vo, si in (
        ReleaseClip.objects.filter(release=release)
        .order_by("order")
        .values_list("id", "video_id", "background_music", "voice_over", "static_image")
        .iterator(chunk_size=10000)
    ):
        cols["video_id"].append(vid)
        cols["labels"].append(labels.get(rc_id, []))
        cols["background_music"].append(bm)
        cols["voice_over"].append(vo)
        cols["static_image"].append(si)
    label_type = pa.list_(pa.struct([("label", pa.string()), ("modality", pa.string()), ("origin", pa.string())]))
    return pa.table(
        {
            "video_id": pa.array(cols["video_id"], pa.string()),
            "labels": pa.array(cols["labels"], label_type),
            "background_music": pa.array(cols["background_music"], pa.bool_()),
            "voice_over": pa.array(cols["voice_over"], pa.bool_()),
            "static_image": pa.array(cols["static_image"], pa.bool_()),
        }
    )


def _yaml_str(value) -> str:
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a valid YAML flow scalar


def _quality_card_lines(card) -> list[str]:
    """The release's quality card (labels.core.card) as Markdown: F1 against gold, measured leave-one-out."""
    if not card:
        return []
    if not card.get("available"):
        return [f"F1 against the gold standard: not measured ({card.get('reason', 'no gold')}).", ""]

    def ci(entry, key):
        lo_hi = entry.get(f"{key}_ci95")
        return f"{entry[key]:.3f} ({lo_hi[0]:.3f}–{lo_hi[1]:.3f})" if lo_hi else f"{entry[key]:.3f}"

    lines = [
        "### F1 against the gold standard",
        "",
        f"Method `{card['method']}` (k={card['k']}) on {card['clips']} gold clips, {card['evaluation']}; the gold "
        "clips' own labels never inform the merge that is scored. 95 % intervals (in brackets): bootstrap over gold "
        f"clips, {card['bootstrap']['samples']} draws, seed {card['bootstrap']['seed']}.",
        "",
        "| | micro-F1 | macro-F1 |",
        "|---|---|---|",
        f"| all | {ci(card, 'micro_f1')} | {ci(card, 'macro_f1')} |",
    ]
    for name, entry in (card.get("modality") or {}).items():
        lines.append(f"| {name} | {ci(entry, 'micro_f1')} | {ci(entry, 'macro_f1')} |")
    meta = {k: v for k, v in (card.get("meta") or {}).items() if v}
    if meta:
        lines += ["", "| meta label | F1 | accuracy | gold clips |", "|---|---|---|---|"]
        for name, m in meta.items():
            lines.append(f"| {name} | {m['f1'] if m['f1'] is not None else 'n/a'} | {m['accuracy']} | {m['clips']} |")
    lines.append("")
    return lines


def dataset_card(release: Release, n_rows: int, class_names: list[str]) -> str:
    """README.md of the export: YAML metadata (configs, features) for the Hub's loader, then the label schema,
    the release's quality figures (when it has them) and where it came from."""
    ds = release.dataset
    stats = release.stats or {}
    counts = release.source_counts or {}
    front = [
        "---",
        f"pretty_name: {_yaml_str(f'{ds.name} {release.name}')}",
        "task_categories:",
        "- audio-classification",
        "- video-classification",
        "tags:",
        "- audio-visual",
        "- multi-label",
        "- avcrowd",
        "configs:",
        "- config_name: default",
        "  data_files:",
        f"  - split: {HF_SPLIT}",
        f"    path: {HF_DATA_FILE}",
        "dataset_info:",
        "  features:",
        "  - name: video_id",
        "    dtype: string",
        "  - name: labels",
        "    list:",
        "    - name: label",
        "      dtype: string",
        "    - name: modality",
        "      dtype: string",
        "    - name: origin",
        "      dtype: string",
        "  - name: background_music",
        "    dtype: bool",
        "  - name: voice_over",
        "    dtype: bool",
        "  - name: static_image",
        "    dtype: bool",
        "  splits:",
        f"  - name: {HF_SPLIT}",
        f"    num_examples: {n_rows}",
        "---",
        "",
    ]
    body = [
        f"# {ds.name} — release {release.name}",
        "",
        ds.description.strip() or f"Multi-label audio-visual labels of the clips of dataset {ds.name}.",
        "",
        "```python",
        "from datasets import load_dataset",
        f'labels = load_dataset("parquet", data_files={{"{HF_SPLIT}": "{HF_DATA_FILE}"}})["{HF_SPLIT}"]',
        "```",
        "",
        "## Label schema",
        "",
        f"One row per clip ({n_rows} clips). Columns:",
        "",
        "| column | type | meaning |",
        "|---|---|---|",
        "| `video_id` | string | the clip's id |",
        "| `labels` | list of {label, modality, origin} | every class present in the clip |",
        "| `background_music` | bool | the clip has background music |",
        "| `voice_over` | bool | the clip has a voice over |",
        "| `static_image` | bool | the video is a static image or a slideshow |",
        "",
        f"- `label`: one of the {len(class_names)} classes listed below, spelled exactly as here.",
        f"- `modality`: {', '.join(f'`{m}`' for m in MODALITIES)} — audible only, visible only, both.",
        "- `origin`: `human` (merged from annotators' votes), `auto` (added by closing over synonyms and "
        "superclasses), `override` (a gold clip's expert label).",
        "",
        "<details><summary>Classes</summary>",
        "",
        *[f"{i}. {name}" for i, name in enumerate(class_names)],
        "",
        "</details>",
        "",
        "## Quality",
        "",
    ]
    figures = []
    for key, label in (
        ("clips", "clips"),
        ("labels", "labels"),
        ("labels_per_clip_mean", "labels per clip (mean)"),
        ("needs_annotation", "clips left out: fewer approved annotations than the merge needs"),
        ("gold_overridden_clips", "gold clips with expert labels"),
    ):
        if key in stats:
            figures.append(f"| {label} | {stats[key]} |")
    agreement = stats.get("agreement") or {}
    for key in ("audible", "visible", *META_LABELS):
        if agreement.get(key) is not None:
            figures.append(f"| Krippendorff's alpha, {key} | {agreement[key]:.3f} |")
    if stats.get("modality_shares"):
        shares = ", ".join(f"{m} {v:.1%}" for m, v in stats["modality_shares"].items())
        figures.append(f"| modality shares | {shares} |")
    if figures:
        body += ["| figure | value |", "|---|---|", *figures, ""]
    else:
        body += ["This release records no quality figures (an imported label set).", ""]
    body += _quality_card_lines(stats.get("quality_card"))
    body += [
        "## Provenance",
        "",
        f"- dataset: `{ds.name}`; release: `{release.name}` (immutable), created "
        f"{release.created_at:%Y-%m-%d %H:%M UTC}"
        + (f" by {release.created_by.get_username()}" if release.created_by_id else ""),
        f"- method: `{release.method}`"
        + (f" with parameters `{json.dumps(release.params, sort_keys=True)}`" if release.params else ""),
    ]
    if release.imported:
        body.append(f"- imported from `{release.source_file}`")
    for key, label in (
        ("crowd_workers", "crowd workers"),
        ("crowd_annotations", "crowd annotations (approved, verified, one per worker and clip)"),
        ("experts", "in-house experts"),
        ("expert_annotations", "expert annotations"),
        ("annotations_used", "annotations used by the merge"),
        ("duplicate_votes_dropped", "repeated votes of one worker on one clip left out"),
    ):
        if key in counts:
            body.append(f"- {label}: {counts[key]}")
    body += [
        f"- exported by avcrowd on {timezone.now():%Y-%m-%d %H:%M UTC}; the same labels as the release's "
        "VGGSounder CSV export (all clips, background music included).",
        "",
    ]
    return "\n".join(front + body)


def release_hf_export(release: Release, out_dir) -> list[Path]:
    """Write `out_dir/README.md` (the dataset card) and `out_dir/data/test-00000-of-00001.parquet`; loadable with
    `datasets.load_dataset(out_dir)` or `load_dataset("parquet", data_files=...)`. Returns the files written."""
    import pyarrow.parquet as pq  # noqa: PLC0415 - pyarrow is heavy and only Parquet exports need it

    out = Path(out_dir)
    (out / "data").mkdir(parents=True, exist_ok=True)
    table = _release_table(release)
    data = out / HF_DATA_FILE
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    data.write_bytes(sink.getvalue())
    card = out / "README.md"
    card.write_text(dataset_card(release, table.num_rows, class_names()), encoding="utf-8")
    return [card, data]
