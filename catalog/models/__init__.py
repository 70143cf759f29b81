"""Models of the catalog: the class list and its relations, datasets and clips, long-running operations."""
from .clips import Clip, Dataset
from .operations import Operation
from .taxonomy import ClassRelation, MetaLabel, TaxonomyClass

__all__ = ["ClassRelation", "Clip", "Dataset", "MetaLabel", "Operation", "TaxonomyClass"]
