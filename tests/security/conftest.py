"""Fixtures of the security tests: a crowd dataset with one batch (remote media, no files)."""

import random

import pytest


@pytest.fixture
def batch(make_crowd_dataset):
    from crowd.services.batches import batches_create

    dataset = make_crowd_dataset("trust", 18, 2, annotations_per_clip=3)
    batches = batches_create(dataset, rng=random.Random(3))
    return batches[0]


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
