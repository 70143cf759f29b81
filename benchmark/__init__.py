"""avcrowd benchmark: the VGGSounder metrics (vggsounder 1.0 definitions), vectorised with numpy.

Plain numpy/pandas/matplotlib; never imports Django.
"""

from .errors import BenchmarkInputError
from .evaluate import (
    CONFUSION_DEFINITIONS,
    META_FILTERS,
    METRICS,
    PAPER_METRICS,
    delta_f1_table,
    evaluate,
    evaluate_model,
    meta_breakdown,
    metric_table,
    select_table,
)
from .labels import INPUTS, META_LABELS, REGIMES, SUBSETS, LabelSet, apply_regime, default_class_names
from .predictions import ModelPredictions

__all__ = [
    "BenchmarkInputError",
    "CONFUSION_DEFINITIONS",
    "META_FILTERS",
    "METRICS",
    "PAPER_METRICS",
    "delta_f1_table",
    "evaluate",
    "evaluate_model",
    "meta_breakdown",
    "metric_table",
    "select_table",
    "INPUTS",
    "META_LABELS",
    "REGIMES",
    "SUBSETS",
    "LabelSet",
    "apply_regime",
    "default_class_names",
    "ModelPredictions",
]
