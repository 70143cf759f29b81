"""Fixtures of the annotator tests: a dataset with regular and gold clips (remote media, no files needed)."""

import random

import pytest


@pytest.fixture
def make_dataset(make_crowd_dataset):
    def make(name="crowd", n_regular=18, n_gold=4, **policy):
        return make_crowd_dataset(name, n_regular, n_gold, **policy)

    return make


@pytest.fixture
def dataset(make_dataset):
    return make_dataset()


@pytest.fixture
def batch(dataset):
    from crowd.services.batches import batches_create

    batches = batches_create(dataset, rng=random.Random(7))
    assert len(batches) == 1
    return batches[0]
