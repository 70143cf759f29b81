from django.core.management.base import CommandError

from catalog.models import Dataset


def get_dataset(name: str) -> Dataset:
    ds = Dataset.objects.filter(name=name).first()
    if ds is None:
        known = ", ".join(Dataset.objects.values_list("name", flat=True)[:20]) or "none"
        raise CommandError(f"unknown dataset {name!r}; known datasets: {known}")
    return ds
