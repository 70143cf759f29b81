"""Fixtures of the release tests: a small approved crowd on a dataset with gold."""

import pytest

from catalog.models import Clip, Dataset, GoldLabel, TaxonomyClass
from crowd.models import Assignment, Batch, BatchItem, ClipAnswer, Worker


def _answer(dataset, worker, clip, labels, meta=(False, False, False), status=Assignment.APPROVED):
    batch = Batch.objects.create(dataset=dataset)
    BatchItem.objects.create(
        batch=batch, clip=clip, position=0, is_gold=clip.is_gold, proposals=[n for n, _a, _v in labels]
    )
    a = Assignment.objects.create(batch=batch, worker=worker, backend=worker.backend, status=status)
    return ClipAnswer.objects.create(
        assignment=a,
        clip=clip,
        background_music=meta[0],
        voice_over=meta[1],
        static_image=meta[2],
        played=True,
        labels=[{"name": n, "audible": au, "visible": vi} for n, au, vi in labels],
    )


@pytest.fixture
def crowd(taxonomy):
    ds = Dataset.objects.create(name="rel")
    clips = {v: Clip.objects.create(dataset=ds, video_id=v) for v in ("b_clip", "a_clip", "c_clip", "g_clip")}
    Clip.objects.filter(pk=clips["g_clip"].pk).update(is_gold=True)
    clips["g_clip"].refresh_from_db()
    w = [
        Worker.objects.create(backend="simulated", external_id=f"w{i}", mean_catch_f1=f)
        for i, f in enumerate([0.9, 0.8, 0.7, 0.1])
    ]
    # a_clip: cow lowing A by the three best, the bad worker says piano; background music 2/3
    for wk, bm in zip(w[:3], (True, True, False)):
        _answer(
            ds, wk, clips["a_clip"], [("cow lowing", True, False), ("playing piano", False, False)], (bm, False, False)
        )
    _answer(ds, w[3], clips["a_clip"], [("playing piano", True, True)], (False, True, True))
    # b_clip: dog barking V by two, AV by one -> visible 3/3, audible 1/3 -> V
    _answer(ds, w[0], clips["b_clip"], [("dog barking", False, True)])
    _answer(ds, w[1], clips["b_clip"], [("dog barking", True, True)])
    _answer(ds, w[2], clips["b_clip"], [("dog barking", False, True)])
    # c_clip: only two approved + one rejected -> needs annotation
    _answer(ds, w[0], clips["c_clip"], [("raining", True, False)])
    _answer(ds, w[1], clips["c_clip"], [("raining", True, False)])
    _answer(ds, w[2], clips["c_clip"], [("raining", True, False)], status=Assignment.REJECTED)
    # g_clip: gold says playing violin AV; the crowd says cello
    for wk in w[:3]:
        _answer(ds, wk, clips["g_clip"], [("playing cello", True, True)])
    GoldLabel.objects.create(
        clip=clips["g_clip"],
        cls=TaxonomyClass.objects.get(name="playing violin, fiddle"),
        modality="AV",
        source="experts",
    )
    return ds, clips, w
