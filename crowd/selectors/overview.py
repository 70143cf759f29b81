import secrets

from django.db.models import Count, Q

from catalog.models import Dataset, TaxonomyClass
from crowd.models import Batch
from crowd.services.demo import demo_hit_url


def overview(base_url: str, *, demo_links: bool = True) -> dict:
    """What the start page shows: datasets with clip/gold/batch counts, and the size of the class list. The
    batch links are demo MTurk arrivals on ``base_url`` (this server's address as the browser sees it), whose
    hand-off goes to the local stand-in receiver."""
    datasets = Dataset.objects.annotate(
        n_clips=Count("clips", distinct=True), n_gold=Count("clips", filter=Q(clips__is_gold=True), distinct=True)
    ).order_by("name")
    rows = []
    for ds in datasets:
        open_batches = list(Batch.objects.filter(dataset=ds, status=Batch.OPEN).order_by("created_at")[:3])
        for batch in open_batches:  # links to try a batch as a (local, demo) MTurk worker, one per visitor
            batch.demo_url = demo_hit_url(base_url, batch, f"DEMO_{secrets.token_hex(4)}") if demo_links else None
        rows.append(
            {
                "dataset": ds,
                "n_clips": ds.n_clips,
                "n_gold": ds.n_gold,
                "open_batches": open_batches,
                "n_batches": Batch.objects.filter(dataset=ds).count(),
            }
        )
    return {"datasets": rows, "n_classes": TaxonomyClass.objects.count()}
