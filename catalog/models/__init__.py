"""Models of the catalog: the class list and its relations, datasets and clips, the gold standard, long-running
operations. Tables keep the names they had in the annotation app (db_table "annotation_*")."""

from .clips import Clip, Dataset
from .gold import GoldLabel
from .operations import Operation
from .taxonomy import ClassRelation, MetaLabel, TaxonomyClass

__all__ = ["ClassRelation", "Clip", "Dataset", "GoldLabel", "MetaLabel", "Operation", "TaxonomyClass"]
