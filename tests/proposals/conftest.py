import pytest


@pytest.fixture
def dataset(taxonomy):
    from annotation.models import Dataset

    return Dataset.objects.create(name="demo-props")
