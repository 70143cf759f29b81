"""A proposal set and the clips it points at. `Proposal.clip` has no per-row foreign-key check in the database
(migration proposals 0005; the check cost 13 s of a 38 s set at 10x): `proposal_set_create` locks the dataset's
clips once, in the set's transaction, and refuses the set when a clip it read has gone. These tests show what a
user sees: a set never points at a deleted clip, deleting a clip deletes its proposals, and while a set is being
built a clip cannot be deleted (the delete waits for the set) but its counters can still be updated."""

import threading

import numpy as np
import pytest
from django.db import connection

import proposals.services as services
from catalog.models import Clip, Dataset
from proposals.models import Proposal, ProposalSet
from proposals.services import ProposalsError, proposal_set_create
from tests.proposals.test_chunked import _run


def _dataset_with_a_run(name, n=24, seed=0):
    ds = Dataset.objects.create(name=name)
    vids = [f"{name}-{i:02d}" for i in range(n)]
    Clip.objects.bulk_create([Clip(dataset=ds, video_id=v) for v in vids])
    rng = np.random.default_rng(seed)
    _run(ds, "m0", vids, scores={m: rng.random((n, 309)).astype(np.float32) for m in ("a", "v", "av")})
    return ds, vids


def _orphans() -> int:
    return Proposal.objects.exclude(clip_id__in=Clip.objects.values("pk")).count()


@pytest.mark.django_db
def test_a_clip_deleted_before_the_set_is_written_refuses_the_set_and_changes_nothing(
    taxonomy, settings, tmp_path, monkeypatch
):
    settings.MEDIA_ROOT = str(tmp_path)
    ds, vids = _dataset_with_a_run("lockds")
    first = proposal_set_create(ds)
    real_class_pks = services.class_pks

    def class_pks_after_a_deletion():  # runs after the clips were read, before the set's transaction
        Clip.objects.filter(dataset=ds, video_id=vids[5]).delete()
        return real_class_pks()

    monkeypatch.setattr(services, "class_pks", class_pks_after_a_deletion)
    with pytest.raises(ProposalsError, match=rf"1 clip\(s\) of dataset lockds were deleted .*{vids[5]}.*nothing"):
        proposal_set_create(ds)
    assert list(ProposalSet.objects.filter(dataset=ds).values_list("pk", "active")) == [(first.pk, True)]
    assert _orphans() == 0
    assert not Proposal.objects.filter(proposal_set=first, clip__video_id=vids[5]).exists()


@pytest.mark.django_db
def test_deleting_a_clip_deletes_its_proposals_and_keeps_the_others(taxonomy, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    ds, vids = _dataset_with_a_run("cascade")
    pset = proposal_set_create(ds)
    before = Proposal.objects.filter(proposal_set=pset).count()
    mine = Proposal.objects.filter(proposal_set=pset, clip__video_id=vids[3]).count()
    assert mine > 0
    Clip.objects.get(dataset=ds, video_id=vids[3]).delete()
    assert _orphans() == 0
    assert Proposal.objects.filter(proposal_set=pset).count() == before - mine


@pytest.mark.django_db(transaction=True)
def test_while_a_set_is_built_its_clips_cannot_be_deleted_but_their_counters_change(
    taxonomy, settings, tmp_path, monkeypatch
):
    """PostgreSQL: FOR KEY SHARE, as each row's key check took: another connection's DELETE of a clip waits for the
    set (here: gives up after 300 ms), an UPDATE of its approval counter does not wait; after the commit the clip
    can be deleted and takes its proposals with it."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks are PostgreSQL's; on SQLite the set's transaction holds the database's write lock")
    settings.MEDIA_ROOT = str(tmp_path)
    ds, vids = _dataset_with_a_run("locked")
    victim = Clip.objects.get(dataset=ds, video_id=vids[7])
    seen = {}
    real_copy = services.copy_binary

    def elsewhere():
        from django.db import OperationalError
        from django.db import connection as conn

        try:
            with conn.cursor() as cur:
                cur.execute("SET lock_timeout = '300ms'")
                cur.execute(
                    "UPDATE annotation_clip SET accepted_answers = accepted_answers + 1 WHERE id = %s", [victim.pk]
                )
                seen["update"] = cur.rowcount
                try:
                    cur.execute("DELETE FROM annotation_clip WHERE id = %s", [victim.pk])
                    seen["delete"] = cur.rowcount
                except OperationalError as exc:
                    seen["delete"] = type(exc.__cause__).__name__
        finally:
            conn.close()

    def copy_while_someone_deletes(*args, **kwargs):
        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join()
        return real_copy(*args, **kwargs)

    monkeypatch.setattr(services, "copy_binary", copy_while_someone_deletes)
    pset = proposal_set_create(ds)
    assert seen == {"update": 1, "delete": "LockNotAvailable"}
    victim.refresh_from_db()
    assert victim.accepted_answers == 1
    assert Proposal.objects.filter(proposal_set=pset, clip=victim).exists()
    victim.delete()
    assert _orphans() == 0
