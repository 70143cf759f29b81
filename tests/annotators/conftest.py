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
    from annotation.services.batches import batches_create

    batches = batches_create(dataset, rng=random.Random(7))
    assert len(batches) == 1
    return batches[0]


def complete_payload(labels=()):
    return {"background_music": False, "voice_over": False, "static_image": False, "played": True,
            "watch_seconds": 1.5, "labels": list(labels)}


def gold_perfect_labels(taxonomy, video_id):
    i = int(video_id[1:])
    return [{"name": taxonomy[100 + i], "audible": True, "visible": True},
            {"name": taxonomy[200 + i], "audible": True, "visible": False}]


def fill_assignment(assignment, taxonomy, *, good=True):
    """Answer every clip of the assignment completely; gold clips right (good) or with nothing ticked."""
    from annotation.services.assignments import answer_save

    for item in assignment.batch.items.select_related("clip"):
        vid = item.clip.video_id
        labels = gold_perfect_labels(taxonomy, vid) if (item.is_gold and good) else []
        answer_save(assignment, vid, complete_payload(labels))


