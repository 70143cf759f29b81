"""The ops pages at two data sizes: every list is paginated and filterable, and no page's number of queries grows
with the data (a list of 400 clips, 150 HITs and 40 workers costs what a list of 6 clips costs)."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from catalog.models import Clip, Dataset
from crowd.models import Assignment, Batch, ClipAnswer, Hit, Worker

MAX_QUERIES = 40  # the dashboard's fixed set of aggregates; lists need far fewer


def _build(name, n_clips, n_workers, n_hits):
    """n_clips regular clips in batches of 10; clip i has i % 4 approved answers (0..3) from distinct workers,
    and one rejected answer every 5th clip; n_hits HITs over the batches, alternating open/reviewable."""
    ds = Dataset.objects.create(name=name, annotations_per_clip=3, batch_size=10, gold_per_batch=0)
    clips = Clip.objects.bulk_create(
        [Clip(dataset=ds, video_id=f"v{i:05d}", media_url=f"https://cdn.example.org/{i}.mp4") for i in range(n_clips)]
    )
    workers = Worker.objects.bulk_create(
        [Worker(backend="mturk", external_id=f"{name}-w{i}") for i in range(n_workers)]
    )
    batches = Batch.objects.bulk_create([Batch(dataset=ds) for _ in range((n_clips + 9) // 10)])
    assignments = {}

    def assignment(b, w, status):
        key = (b, w)
        if key not in assignments:
            assignments[key] = Assignment.objects.create(
                batch=batches[b], worker=workers[w], backend="simulated", status=status, work_seconds=300
            )
        return assignments[key]

    answers = []
    for i, clip in enumerate(clips):
        b = i // 10
        for j in range(i % 4):
            answers.append(ClipAnswer(assignment=assignment(b, j % n_workers, "approved"), clip=clip, labels=[]))
        if i % 5 == 0:
            answers.append(ClipAnswer(assignment=assignment(b, 3 % n_workers, "rejected"), clip=clip, labels=[]))
    ClipAnswer.objects.bulk_create(answers)
    Hit.objects.bulk_create(
        [
            Hit(
                batch=batches[h % len(batches)],
                external_id=f"{name}-H{h}",
                status="open" if h % 2 else "reviewable",
                reward=Decimal("1.00"),
                max_assignments=3,
                target_assignments=3,
                unique_request_token=f"{name}-t{h}",
            )
            for h in range(n_hits)
        ]
    )
    return ds


PAGES = [
    "/ops/",
    "/ops/{d}/",
    "/ops/{d}/clips/?accepted=3%2B",
    "/ops/{d}/clips/?accepted=0&page=2",
    "/ops/{d}/clips/?accepted=1&q=v000",
    "/ops/{d}/hits/",
    "/ops/{d}/hits/?status=open&page=2",
    "/ops/{d}/assignments/?status=approved",
    "/ops/{d}/workers/",
]


def _queries(client, url):
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(ctx.captured_queries), response.content.decode()


@pytest.mark.parametrize("url", PAGES)
def test_query_count_does_not_grow_with_the_data(admin_client, taxonomy, url, django_assert_max_num_queries):
    small = _build("small", 6, 4, 2)
    n_small, _ = _queries(admin_client, url.format(d=small.name))
    Dataset.objects.filter(pk=small.pk).delete()  # /ops/ lists every dataset: compare one small with one large
    large = _build("large", 400, 40, 150)
    with django_assert_max_num_queries(MAX_QUERIES):
        n_large, html = _queries(admin_client, url.format(d=large.name))
    assert n_large == n_small, f"{url}: {n_small} queries with 6 clips, {n_large} with 400"


def test_clip_list_pages_and_filters(admin_client, taxonomy):
    ds = _build("paged", 400, 6, 0)
    html = admin_client.get(f"/ops/{ds.name}/clips/?accepted=3%2B").content.decode()
    # clips 3, 7, 11, ... have 3 approved answers: 100 of them, one page exactly
    assert "100 row(s)" in html and "v00003" in html and "v00399" in html and 'rel="next"' not in html
    html = admin_client.get(f"/ops/{ds.name}/clips/?accepted=0").content.decode()
    assert "100 row(s)" in html and "v00000" in html and "v00396" in html
    html = admin_client.get(f"/ops/{ds.name}/clips/?accepted=1%2B").content.decode()
    assert "300 row(s), 1–100 shown" in html and 'rel="next" href="?accepted=1%2B&amp;page=2"' in html
    page3 = admin_client.get(f"/ops/{ds.name}/clips/?accepted=1%2B&page=3").content.decode()
    assert "201–300 shown" in page3 and "v00399" in page3 and "v00001<" not in page3 and 'rel="next"' not in page3
    # the video id filter and the bucket together; the rejected answers of every 5th clip do not count
    html = admin_client.get(f"/ops/{ds.name}/clips/?accepted=2&q=v001").content.decode()
    assert "25 row(s)" in html and "v00102" in html and "v00002" not in html
    assert admin_client.get(f"/ops/{ds.name}/clips/?accepted=lots").status_code == 404


def test_hit_list_pages_and_filters(admin_client, taxonomy):
    ds = _build("hitty", 30, 4, 250)
    html = admin_client.get(f"/ops/{ds.name}/hits/").content.decode()
    assert "250 row(s), 1–100 shown" in html and "page 1 of 3" in html
    html = admin_client.get(f"/ops/{ds.name}/hits/?status=open").content.decode()
    assert "125 row(s), 1–100 shown" in html and "reviewable" not in html.split("<tbody>")[1]
    last = admin_client.get(f"/ops/{ds.name}/hits/?status=open&page=2").content.decode()
    assert "101–125 shown" in last and "page 2 of 2" in last
    html = admin_client.get(f"/ops/{ds.name}/hits/?backend=prolific").content.decode()
    assert "0 row(s)" in html and "Nothing here." in html
