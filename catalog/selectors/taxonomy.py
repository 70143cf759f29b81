"""Reads of the taxonomy. The class list is small and changes only on a (re)load: cached per process and
invalidated by taxonomy_load (a version counter in the cache would be needed across processes; reloads happen
at deploy time, when workers restart)."""

from functools import lru_cache

from catalog.models import ClassRelation, MetaLabel, TaxonomyClass


@lru_cache(maxsize=1)
def _class_names() -> tuple[str, ...]:
    return tuple(TaxonomyClass.objects.order_by("index").values_list("name", flat=True))


def class_names() -> list[str]:
    """The class list in logit order (index i = logit column i)."""
    return list(_class_names())


@lru_cache(maxsize=1)
def _class_index() -> dict[str, int]:
    return {name: i for i, name in enumerate(_class_names())}


def class_index() -> dict[str, int]:
    """name -> logit column. Cached like the class list (every autosave looks names up here); do not mutate."""
    return _class_index()


@lru_cache(maxsize=1)
def _class_pks() -> dict[str, int]:
    return dict(TaxonomyClass.objects.values_list("name", "pk"))


def class_pks() -> dict[str, int]:
    """name -> TaxonomyClass primary key (for writing rows that point at classes). Cached like the class list; do
    not mutate."""
    return _class_pks()


def relations() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(synonym pairs, (subclass, superclass) pairs) by class name."""
    synonyms, superclasses = [], []
    for kind, src, dst in ClassRelation.objects.values_list("kind", "source__name", "target__name"):
        (synonyms if kind == ClassRelation.SYNONYM else superclasses).append((src, dst))
    return synonyms, superclasses


def meta_labels() -> list[dict]:
    return list(MetaLabel.objects.order_by("position").values("key", "question"))


def clear_cache() -> None:
    _class_names.cache_clear()
    _class_index.cache_clear()
    _class_pks.cache_clear()
