"""The release's vote load on PostgreSQL reads answers, ticks and proposals in bulk (one CSV value per query) into
arrays (issue 18: a 10× release spent most of its load in Python per answer and per tick). It must load exactly
what the row-by-row path loads, on the awkward data a real crowd produces: a worker answering a clip twice (two
HITs of a results file), answers without a worker, unverified and rejected work, media-failure reports, ticked
names that are not classes, label lists that are not lists, a clip shown in two batches, and in-house experts."""

import random

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from catalog.models import Clip, Dataset, GoldLabel, TaxonomyClass
from crowd.models import Assignment, Batch, BatchItem, ClipAnswer, ExpertAnnotation, Worker
from labels.services.create import release_create
from labels.services.load import votes_load


def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("the bulk load is PostgreSQL's: set DATABASE_URL")


def _messy_crowd(names, seed=7):
    rng = random.Random(seed)
    ds = Dataset.objects.create(name="messy", annotations_per_clip=2)
    clips = [Clip.objects.create(dataset=ds, video_id=f"v{i:03d}", is_gold=i % 9 == 0) for i in range(36)]
    other = Dataset.objects.create(name="other")
    stray = Clip.objects.create(dataset=other, video_id="stray")
    for c in clips[:4]:
        if c.is_gold:
            GoldLabel.objects.create(clip=c, cls=TaxonomyClass.objects.get(name=names[3]), modality="AV", source="x")
    workers = [
        Worker.objects.create(backend="mturk", external_id=f"W{i}", mean_catch_f1=None if i % 3 == 0 else 0.5 + i / 20)
        for i in range(7)
    ]
    now = timezone.now()
    t = 0
    for b in range(9):
        batch = Batch.objects.create(dataset=ds)
        shown = clips[b * 4 : b * 4 + 6]  # overlapping windows: clips in two batches, with other proposals
        for pos, c in enumerate(shown):
            proposals = rng.sample(names[:40], 6) + ["not a class", 17, None]
            if b == 3 and pos == 0:
                proposals = {"not": "a list"}
            BatchItem.objects.create(batch=batch, clip=c, position=pos, is_gold=c.is_gold, proposals=proposals)
        for w in rng.sample(workers, 4) + [None]:
            t += 1
            status = rng.choice([Assignment.APPROVED] * 5 + [Assignment.REJECTED])
            a = Assignment.objects.create(
                batch=batch,
                worker=w,
                backend="mturk",
                status=status,
                verified_at=None if (w is not None and w.external_id == "W5" and b % 2) else now,
                submitted_at=now + timezone.timedelta(seconds=(t * 37) % 50),  # not in creation order
            )
            for c in shown:
                i = clips.index(c)
                true = {names[(3 * i) % 40], names[(3 * i + 1) % 40]}  # what a good worker hears or sees
                shown_names = list(true) + [n for n in rng.sample(names[:40], 8) if n not in true][:6]
                labels = [
                    {"name": n, "audible": rng.random() < (0.8 if n in true else 0.1), "visible": rng.random() < 0.4}
                    for n in shown_names
                ]
                if rng.random() < 0.2:
                    labels.append({"name": "a made-up class", "audible": True, "visible": False})
                if rng.random() < 0.1:
                    labels.append("just a string")
                if rng.random() < 0.05:
                    labels = {"name": names[0], "audible": True}
                ClipAnswer.objects.create(
                    assignment=a,
                    clip=c,
                    labels=labels,
                    background_music=rng.choice([True, False, None]),
                    voice_over=rng.choice([True, False, None]),
                    static_image=rng.choice([True, False, None]),
                    media_failed=rng.random() < 0.05,
                )
            if b == 0:
                ClipAnswer.objects.create(
                    assignment=a, clip=stray, labels=[{"name": names[1], "audible": True, "visible": True}]
                )
    # two assignments of the same worker on the same clips (a results file with the clip in two HITs)
    for minutes in (-5, 5):
        again = Batch.objects.create(dataset=ds)
        for pos, c in enumerate(clips[:5]):
            BatchItem.objects.create(batch=again, clip=c, position=pos, proposals=names[50:56])
        a = Assignment.objects.create(
            batch=again,
            worker=workers[1],
            backend="mturk",
            status=Assignment.APPROVED,
            verified_at=now,
            submitted_at=now + timezone.timedelta(minutes=minutes),
        )
        for c in clips[:5]:
            ClipAnswer.objects.create(
                assignment=a, clip=c, labels=[{"name": names[50 + minutes % 3], "audible": True, "visible": False}]
            )
    # later saves change what was ticked (the autosave rewrites the label list): the load must see the new ticks
    for answer in ClipAnswer.objects.filter(clip__in=clips[10:14]):
        answer.labels = [{"name": names[60], "audible": False, "visible": True}]
        answer.save(update_fields=["labels"])
    user = get_user_model().objects.create_user("expert", password="x")
    for c in clips[:6]:
        ExpertAnnotation.objects.create(
            clip=c, user=user, labels=[{"name": names[2], "audible": True, "visible": True}], static_image=True
        )
    return ds


ARRAYS = (
    "ann_clip",
    "ann_worker",
    "ann_meta",
    "ann_group",
    "tick_ann",
    "tick_class",
    "tick_audible",
    "tick_visible",
    "worker_quality",
    "cand_clip",
    "cand_class",
)


@pytest.mark.django_db
def test_the_bulk_load_loads_exactly_what_the_row_by_row_load_does(taxonomy):
    _postgres_only()
    ds = _messy_crowd(taxonomy)
    bulk, rows = votes_load(ds, bulk=True), votes_load(ds, bulk=False)
    assert rows.counts["crowd_annotations"] > 150 and rows.counts["duplicate_votes_dropped"] >= 5
    assert rows.counts["unknown_classes_skipped"]["a made-up class"] > 5
    assert len(rows.votes.tick_ann) > 300 and len(rows.votes.cand_clip) > 100
    for name in ARRAYS[:-2]:
        np.testing.assert_array_equal(getattr(bulk.votes, name), getattr(rows.votes, name), err_msg=name)
    # the proposals shown are a set of (clip, class) atoms: the same pairs, duplicates included, in any order
    assert sorted(zip(bulk.votes.cand_clip.tolist(), bulk.votes.cand_class.tolist())) == sorted(
        zip(rows.votes.cand_clip.tolist(), rows.votes.cand_class.tolist())
    )
    assert bulk.counts == rows.counts
    assert bulk.annotator_keys == rows.annotator_keys
    assert bulk.catch_clips == rows.catch_clips
    assert bulk.gold == rows.gold and bulk.clip_ids == rows.clip_ids
    assert taxonomy[60] in names_ticked(bulk)  # a tick added by a later save


@pytest.mark.django_db
def test_the_bulk_load_reads_the_label_lists_where_the_ticked_column_is_missing(taxonomy):
    """A schema built without the migrations (no generated `ticked` column) loads the same votes, slower."""
    _postgres_only()
    ds = _messy_crowd(taxonomy, seed=3)
    with_column = votes_load(ds, bulk=True)
    with connection.cursor() as cursor:  # rolled back with the test's transaction
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # check the pending foreign keys before the DDL
        cursor.execute("ALTER TABLE annotation_clipanswer DROP COLUMN ticked")
    without = votes_load(ds, bulk=True)
    for name in ARRAYS[:-2]:
        np.testing.assert_array_equal(getattr(without.votes, name), getattr(with_column.votes, name), err_msg=name)
    assert without.counts == with_column.counts and names_ticked(without) >= {taxonomy[60]}


def names_ticked(loaded):
    return {loaded.class_names[k] for k in loaded.votes.tick_class.tolist()}


@pytest.mark.django_db
def test_a_release_made_from_the_bulk_load_equals_one_made_row_by_row(taxonomy, monkeypatch):
    _postgres_only()
    ds = _messy_crowd(taxonomy, seed=11)
    import labels.services.create as create

    made = []
    for method, params in (("majority", {"k": 2}), ("dawid_skene", {"k": 2, "n_iter": 5})):
        fast = release_create(ds, f"fast-{method}", method=method, params=params)
        with monkeypatch.context() as m:
            m.setattr(create, "votes_load", lambda *a, **kw: votes_load(*a, **kw, bulk=False))
            slow = release_create(ds, f"slow-{method}", method=method, params=params)
        made.append((fast, slow))

    def labels(release):
        return list(
            release.labels.order_by("order").values_list(
                "release_clip__video_id", "name", "modality", "origin", "origin_source"
            )
        )

    for fast, slow in made:
        assert labels(fast) == labels(slow) and len(labels(fast)) > 40
        assert fast.stats == slow.stats and fast.source_counts == slow.source_counts


@pytest.mark.django_db
def test_asking_for_the_bulk_load_on_another_database_is_refused(taxonomy):
    if connection.vendor == "postgresql":
        pytest.skip("the refusal is for databases other than PostgreSQL")
    ds = Dataset.objects.create(name="lite")
    with pytest.raises(ValueError, match="needs PostgreSQL"):
        votes_load(ds, bulk=True)


def _committed_elsewhere(func):
    """Run `func` on a connection of its own (a thread), committed before this returns."""
    import threading

    from django.db import connection as conn

    def run():
        try:
            func()
        finally:
            conn.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()


@pytest.mark.django_db(transaction=True)
def test_the_load_reads_on_three_connections_one_snapshot_and_what_one_connection_reads(taxonomy, monkeypatch):
    """Outside a transaction the ticks and proposals are read beside the answers, each on a connection of its own
    (labels.services.load._beside); all three read the same snapshot: a change committed by someone else while the
    load runs is in none of them, and the next load sees it."""
    _postgres_only()
    import threading

    import labels.services.load as load

    ds = _messy_crowd(taxonomy, seed=5)
    monkeypatch.setattr(load, "LOAD_CONNECTIONS", 1)
    one = votes_load(ds)
    monkeypatch.setattr(load, "LOAD_CONNECTIONS", 3)
    threads, real_proposals = {}, load._proposals_pg
    first_item = BatchItem.objects.filter(clip__dataset=ds).order_by("id").first()

    def proposals_while_someone_changes_them(*args):
        threads["proposals"] = threading.get_ident()
        # committed after the load's snapshot was taken: a new proposal list for the first batch item
        _committed_elsewhere(lambda: BatchItem.objects.filter(pk=first_item.pk).update(proposals=[taxonomy[300]]))
        return real_proposals(*args)

    monkeypatch.setattr(load, "_proposals_pg", proposals_while_someone_changes_them)
    three = votes_load(ds)
    assert threads["proposals"] != threading.get_ident()  # read on another thread, i.e. another connection
    for name in ARRAYS[:-2]:
        np.testing.assert_array_equal(getattr(three.votes, name), getattr(one.votes, name), err_msg=name)
    pairs = sorted(zip(three.votes.cand_clip.tolist(), three.votes.cand_class.tolist()))
    assert pairs == sorted(zip(one.votes.cand_clip.tolist(), one.votes.cand_class.tolist()))
    assert three.counts == one.counts and three.annotator_keys == one.annotator_keys
    # the change is in the next load, not in the one it was made during
    shown_300 = {(three.clip_ids[c], k) for c, k in pairs if k == 300}
    assert (first_item.clip.video_id, 300) not in shown_300
    monkeypatch.setattr(load, "_proposals_pg", real_proposals)
    later = votes_load(ds)
    assert (first_item.clip.video_id, 300) in {
        (later.clip_ids[c], k) for c, k in zip(later.votes.cand_clip.tolist(), later.votes.cand_class.tolist())
    }


@pytest.mark.django_db
def test_a_number_among_the_proposals_is_no_class_even_where_a_class_is_named_like_it(taxonomy):
    """The bulk read takes every proposal entry as text; a number 17 must not become a class named "17" (the
    row-by-row read skips entries that are not strings)."""
    _postgres_only()
    from catalog.selectors.taxonomy import clear_cache

    ds = _messy_crowd(taxonomy, seed=9)  # its proposal lists hold the number 17 and null besides class names
    TaxonomyClass.objects.filter(name=taxonomy[5]).update(name="17")
    clear_cache()
    try:
        item = BatchItem.objects.filter(clip__dataset=ds).order_by("id").first()
        item.proposals = ["17", 17, "a\x1fb", taxonomy[6]]
        item.save(update_fields=["proposals"])
        bulk, rows = votes_load(ds, bulk=True), votes_load(ds, bulk=False)
        pairs = sorted(zip(bulk.votes.cand_clip.tolist(), bulk.votes.cand_class.tolist()))
        assert pairs == sorted(zip(rows.votes.cand_clip.tolist(), rows.votes.cand_class.tolist()))
        first = bulk.clip_ids.index(item.clip.video_id)
        assert sorted(k for c, k in pairs if c == first) == [5, 6]  # "17" once (the string), not twice
    finally:
        clear_cache()
