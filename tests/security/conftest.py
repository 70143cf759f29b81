"""Fixtures of the security tests: a crowd dataset with one batch (remote media, no files)."""

import random

import pytest


@pytest.fixture
def batch(make_crowd_dataset):
    from crowd.services.batches import batches_create

    dataset = make_crowd_dataset("trust", 18, 2, annotations_per_clip=3)
    batches = batches_create(dataset, rng=random.Random(3))
    return batches[0]


# the worker of `started`: an MTurk worker arriving on the HIT page
WORKER = {"workerId": "A2LEAN", "assignmentId": "3LEAN", "hitId": "3HIT", "turkSubmitTo": "https://www.mturk.com"}


@pytest.fixture
def started(batch):
    """An assignment started from the HIT page: (data of the session, first clip's video id, its autosave URL)."""
    from django.test import Client

    r = Client().get(f"/api/hit/{batch.uuid}/session", WORKER)
    assert r.status_code == 200, r.content
    data = r.json()
    vid = data["clips"][0]["video_id"]
    return data, vid, f"/api/hit/assignments/{data['assignment']}/answers/{vid}"


@pytest.fixture
def role_user(django_user_model):
    """role_user(name, role) -> a signed-in-able account: role None, "annotator", "researcher" or "admin"."""
    from django.contrib.auth.models import Group

    from catalog.access import ANNOTATOR_GROUP, RESEARCHER_GROUP

    def make(name, role=None):
        user = django_user_model.objects.create_user(name, password="Correct-horse-42", is_staff=role == "admin")
        if role in ("annotator", "researcher"):
            user.groups.add(
                Group.objects.get_or_create(name={"annotator": ANNOTATOR_GROUP, "researcher": RESEARCHER_GROUP}[role])[
                    0
                ]
            )
        return user

    return make
