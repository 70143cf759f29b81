"""Loading the class list and its relations into the taxonomy tables."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from django.db import transaction

from catalog.core.taxonomy import read_classes_csv, read_relations_csv
from catalog.errors import ImportFailed
from catalog.models import ClassRelation, MetaLabel, TaxonomyClass
from catalog.selectors import taxonomy as taxonomy_selectors

DEFAULT_RELATIONS = Path(__file__).resolve().parent.parent / "data" / "class_relations.csv"
META_QUESTIONS = [
    ("background_music", "Is there background music (music added to the video, not played in the scene)?"),
    ("voice_over", "Is there a voice over (a voice not belonging to anyone in the scene)?"),
    ("static_image", "Is the video a static image or a slideshow of static images?"),
]


def default_classes_csv() -> Path:
    """The 309 VGGSound classes in logit order, as shipped by the `vggsounder` package."""
    return Path(str(resources.files("vggsounder") / "data" / "classes.csv"))


@transaction.atomic
def taxonomy_load(classes_csv: str | Path | None = None, relations_csv: str | Path | None = None) -> dict:
    """Load (or re-load) classes, meta labels and relations. Idempotent; all-or-nothing.

    Re-loading a list that renames or reorders classes already in use is refused: the class list is the logit
    order of every stored prediction.
    """
    classes = read_classes_csv(classes_csv or default_classes_csv())
    names = {name for _, name, _ in classes}
    relations = read_relations_csv(relations_csv or DEFAULT_RELATIONS, names)

    existing = {c.index: c for c in TaxonomyClass.objects.all()}
    if existing:
        changed = [
            f"index {i}: {existing[i].name!r} -> {name!r}"
            for i, name, _ in classes
            if i in existing and existing[i].name != name
        ]
        extra = sorted(set(existing) - {i for i, _, _ in classes})
        if changed or extra:
            details = changed + [f"index {i}: {existing[i].name!r} would be removed" for i in extra]
            raise ImportFailed(
                "the class list differs from the one already loaded; the logit order of stored predictions "
                "depends on it, so it cannot change in place",
                details=details,
            )
    created = 0
    for index, name, mid in classes:
        obj = existing.get(index)
        if obj is None:
            TaxonomyClass.objects.create(index=index, name=name, mid=mid)
            created += 1
        elif obj.mid != mid:
            obj.mid = mid
            obj.save(update_fields=["mid"])

    for position, (key, question) in enumerate(META_QUESTIONS):
        MetaLabel.objects.update_or_create(key=key, defaults={"question": question, "position": position})

    by_name = {c.name: c for c in TaxonomyClass.objects.all()}
    wanted = set()
    for kind, src, dst in relations:
        if kind == ClassRelation.SYNONYM:
            src, dst = sorted((src, dst), key=lambda n: by_name[n].index)
        wanted.add((kind, by_name[src].pk, by_name[dst].pk))
    current = set(ClassRelation.objects.values_list("kind", "source_id", "target_id"))
    for kind, s, t in wanted - current:
        ClassRelation.objects.create(kind=kind, source_id=s, target_id=t)
    transaction.on_commit(taxonomy_selectors.clear_cache)
    taxonomy_selectors.clear_cache()
    return {
        "classes": len(classes),
        "created": created,
        "relations": len(wanted),
        "relations_added": len(wanted - current),
    }
