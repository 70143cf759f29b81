import pytest


@pytest.fixture
def dataset(taxonomy):
    from catalog.models import Dataset

    return Dataset.objects.create(name="demo-props")
