"""The release tables have no per-row foreign-key triggers (issue 18: they cost ~15 s of database CPU per 150k-clip
release). What they guarded still holds: a release whose rows would point at a missing class or clip is refused
whole, deleting a dataset removes its releases' rows, and deleting a clip keeps the release's row without it."""

import pytest
from django.db import IntegrityError

import labels.services.create as create
from catalog.models import Clip
from labels.models import Release, ReleaseClip, ReleaseLabel
from labels.services.create import release_create

pytestmark = pytest.mark.django_db


def test_a_release_naming_a_class_that_no_longer_exists_is_refused_whole(crowd, monkeypatch):
    ds, _clips, _w = crowd
    real = create.class_pks()
    stale = {name: pk + 100_000 if name == "cow lowing" else pk for name, pk in real.items()}  # a reloaded taxonomy
    monkeypatch.setattr(create, "class_pks", lambda: stale)
    with pytest.raises(IntegrityError, match=r"1 class\(es\) of its labels no longer exist"):
        release_create(ds, "stale")
    assert not Release.objects.filter(name="stale").exists()
    assert not ReleaseLabel.objects.exists() and not ReleaseClip.objects.exists()
    monkeypatch.setattr(create, "class_pks", lambda: real)
    release = release_create(ds, "fresh")
    assert release.labels.filter(name="cow lowing").count() == 1


def test_deleting_a_dataset_removes_its_releases_rows_and_a_deleted_clip_leaves_its_video_id(crowd):
    ds, clips, _w = crowd
    release = release_create(ds, "v1")
    n_clips, n_labels = release.clips.count(), release.labels.count()
    assert n_clips == 3 and n_labels >= 3
    clips["a_clip"].delete()
    row = ReleaseClip.objects.get(release=release, video_id="a_clip")
    assert row.clip_id is None and row.labels.filter(name="cow lowing").exists()  # the release is unchanged
    assert Clip.objects.filter(pk=clips["b_clip"].pk).exists()
    ds.delete()
    assert not Release.objects.exists() and not ReleaseClip.objects.exists() and not ReleaseLabel.objects.exists()
