"""Models of the annotation app, one module per area, re-exported here."""
import importlib

from .taxonomy import ClassRelation, MetaLabel, TaxonomyClass  # noqa: F401
from .clips import Clip, Dataset  # noqa: F401
from .crowd import (  # noqa: F401
    Assignment,
    AssignmentDecisionLog,
    Batch,
    BatchItem,
    ClipAnswer,
    Worker,
)
from .gold import ExpertAnnotation, GoldLabel  # noqa: F401

# Areas that land independently (releases, reports, marketplace) add their modules here.
for _name in ("releases", "reports", "marketplace"):
    try:
        _mod = importlib.import_module(f"{__name__}.{_name}")
    except ModuleNotFoundError as _exc:
        if _exc.name != f"{__name__}.{_name}":
            raise
        continue
    for _attr in getattr(_mod, "__all__", []):
        globals()[_attr] = getattr(_mod, _attr)
