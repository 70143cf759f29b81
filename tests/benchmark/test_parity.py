"""Our numbers equal the installed reference implementation (vggsounder 1.0) to 1e-6.

Both run on the same generated predictions (scores with and without ties, float32 arrays,
label sets; some clips missing, some ids with ".mp4"), every metric, every subset, the default
regime (no background-music clips), all clips, and meta-label filters.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from benchmark import delta_f1_table, evaluate, meta_breakdown, metric_table
from benchmark.io import load_predictions_dir
from benchmark.synthetic import synthetic_predictions

from .conftest import write_pickle

vgg_benchmark = pytest.importorskip("vggsounder.benchmark")
from vggsounder.labels import VGGSounder  # noqa: E402

MODELS = {
    "scores_ties": dict(kind="scores", seed=12, ties=True),
    "scores_f32": dict(kind="scores", seed=13, float32=True, coverage=0.9),
    "labels": dict(kind="labels", seed=14),
    "labels_sparse": dict(kind="labels", seed=15, coverage=0.8, skill=1.0),
}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, sample_labels):
    d = tmp_path_factory.mktemp("models")
    for name, kw in MODELS.items():
        write_pickle(d / f"{name}.pkl", synthetic_predictions(sample_labels, **kw))
    return d


@pytest.fixture(scope="module")
def our_models(model_dir, classes):
    return load_predictions_dir(model_dir, classes)


def reference_table(model_dir, labels_csv, models=None, **meta):
    vs = VGGSounder(labels_csv, background_music=None, voice_over=None, static_image=None)
    vs.set_meta_filters(**meta)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = vgg_benchmark.compute_all_results(str(model_dir), vggsounder=vs, verbose=False, models_filter=models)
    return vgg_benchmark.get_metric_dataframe(res)


def assert_tables_equal(ours: pd.DataFrame, ref: pd.DataFrame):
    ref = ref.loc[ours.index]
    compared = 0
    for col in ours.columns:
        a = ours[col].to_numpy(dtype=float)
        b = ref[col].to_numpy(dtype=float)
        assert np.array_equal(np.isnan(a), np.isnan(b)), f"{col}: missing values differ: ours {a}, reference {b}"
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6, err_msg=str(col))
        compared += int(np.isfinite(a).sum())
    return compared


@pytest.mark.parametrize("regime,meta", [("default", {"background_music": False}), ("all", {})])
def test_every_metric_equals_reference(regime, meta, model_dir, our_models, sample_labels, sample_labels_csv):
    ours = metric_table(evaluate(sample_labels, our_models, regime=regime))
    ref = reference_table(model_dir, sample_labels_csv, **meta)
    assert sorted(ours.index) == sorted(MODELS)
    compared = assert_tables_equal(ours, ref)
    # scored models: 7 metrics x 4 k + 2 AUC over 5 subsets (+3 mu); label models: 7 x 5 (+3 mu)
    assert compared >= 2 * (7 * 4 * 5 + 2 * 5 + 3) + 2 * (7 * 5 + 3)


@pytest.mark.parametrize(
    "filter_name,meta,names",
    [
        ("with static_image", {"static_image": True}, ["scores_ties", "labels"]),
        ("without voice_over", {"voice_over": False}, ["labels"]),
        ("neither", {"background_music": False, "static_image": False, "voice_over": False}, ["labels"]),
    ],
)
def test_meta_label_filters_equal_reference(
    filter_name, meta, names, model_dir, our_models, sample_labels, sample_labels_csv
):
    picked = [m for m in our_models if m.name in names]
    ours = metric_table(meta_breakdown(sample_labels, picked, filters={filter_name: meta})[filter_name])
    ref = reference_table(model_dir, sample_labels_csv, models=names, **meta)
    assert_tables_equal(ours, ref)


def test_delta_f1_is_with_minus_without(our_models, sample_labels):
    picked = [m for m in our_models if m.name in ("scores_ties", "labels")]
    breakdown = meta_breakdown(sample_labels, picked)
    delta = delta_f1_table(breakdown)
    for meta in ("background_music", "static_image", "voice_over"):
        with_ = metric_table(breakdown[f"with {meta}"])["f1"]
        without = metric_table(breakdown[f"without {meta}"])["f1"]
        np.testing.assert_allclose(delta[meta].to_numpy(), (with_ - without).to_numpy())
    # the clips with background music really change the numbers
    assert np.abs(delta["background_music"].to_numpy()).max() > 0.01


def test_evaluating_files_with_prefetch_gives_the_same_numbers(model_dir, our_models, sample_labels, classes):
    from benchmark.evaluate import evaluate_paths

    files = sorted(model_dir.glob("*.pkl"))
    want = metric_table(evaluate(sample_labels, our_models, regime="all"))
    for prefetch in (True, False):
        got = metric_table(evaluate_paths(sample_labels, files, classes, regime="all", prefetch=prefetch))
        pd.testing.assert_frame_equal(got.loc[want.index], want)


def test_full_published_label_csv_equals_reference(tmp_path, classes):
    """Once on all 15,069 clips of the published CSV, with the package's default VGGSounder() (no
    background-music clips), for a label-set model (the reference needs ~7 s for it)."""
    from benchmark import LabelSet
    from benchmark.io import load_predictions_pickle
    from benchmark.labels import default_labels_csv

    labels = LabelSet.from_csv(default_labels_csv(), classes)
    assert len(labels) == 15069
    write_pickle(tmp_path / "full.pkl", synthetic_predictions(labels, seed=21, kind="labels"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = vgg_benchmark.get_metric_dataframe(
            vgg_benchmark.compute_all_results(str(tmp_path), vggsounder=VGGSounder(), verbose=False)
        )
    ours = metric_table(evaluate(labels, [load_predictions_pickle(tmp_path / "full.pkl", classes)]))
    assert assert_tables_equal(ours, ref) == 7 * 5 + 3
