"""Shared fixtures: small label sets in the VGGSounder layout, class list, prediction pickles."""

from __future__ import annotations

import pickle

import pandas as pd
import pytest

from benchmark import LabelSet, default_class_names
from benchmark.labels import default_labels_csv


@pytest.fixture(scope="session")
def classes():
    return default_class_names()


@pytest.fixture(scope="session")
def published_labels_df():
    return pd.read_csv(default_labels_csv(), dtype=str, keep_default_na=False)


@pytest.fixture(scope="session")
def sample_labels_csv(tmp_path_factory, published_labels_df):
    """Every 40th clip of the published CSV (~380 clips, all meta combinations, every subset)."""
    df = published_labels_df
    ids = df.video_id.drop_duplicates().iloc[::40]
    path = tmp_path_factory.mktemp("labels") / "labels.csv"
    df[df.video_id.isin(set(ids))].to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def sample_labels(sample_labels_csv, classes):
    return LabelSet.from_csv(sample_labels_csv, classes)


def write_pickle(path, data):
    with open(path, "wb") as fh:
        pickle.dump(data, fh)
    return path
