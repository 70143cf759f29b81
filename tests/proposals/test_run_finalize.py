"""A model run's chunks assembled into its artifact (`run_finalize`), written a member and a chunk at a time
(`write_npz_stream`) instead of every score matrix concatenated in memory: the artifact a user's proposal sets
read holds every scored clip's scores in chunk order, is read row by row in place (stored members), and a file
that would not match its shape is refused."""

import io

import numpy as np
import pytest
from django.core.files.base import ContentFile

from catalog.models import Dataset
from catalog.selectors.taxonomy import class_names
from proposals.core.predictions_io import NpzRows, PredictionArrays, from_npz, to_npz_bytes, write_npz_stream
from proposals.models import ModelRun, RunChunk
from proposals.services import run_finalize

pytestmark = pytest.mark.django_db


def _chunk(run, index, vids, scores):
    chunk = RunChunk.objects.create(run=run, index=index, video_ids=vids, status=RunChunk.DONE, n_done=len(vids))
    arrays = PredictionArrays(vids, class_names(), scores)
    chunk.artifact.save(f"run{run.pk}-chunk{index}.npz", ContentFile(to_npz_bytes(arrays)), save=True)
    return chunk


def test_the_run_artifact_holds_every_chunk_in_order_and_reads_in_place(taxonomy, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    ds = Dataset.objects.create(name="finalize")
    run = ModelRun.objects.create(
        dataset=ds, external_name="m", kind=ModelRun.SCORES, modalities=["a", "v", "av"], n_clips=9
    )
    rng = np.random.default_rng(1)
    C = len(class_names())
    sizes = [4, 0, 3, 2]  # a chunk whose every clip failed has no rows
    expected_vids, expected = [], {m: [] for m in ("a", "v", "av")}
    chunks = []
    for index, n in enumerate(sizes):
        vids = [f"c{index}-{i}" for i in range(n)]
        mods = ("a", "av") if index == 2 else ("a", "v", "av")  # a chunk without visual scores
        scores = {m: rng.standard_normal((n, C)).astype(np.float32) for m in mods}
        chunks.append(_chunk(run, index, vids, scores))
        expected_vids += vids
        for m in expected:
            expected[m].append(scores.get(m, np.zeros((n, C), np.float32)))

    run = run_finalize(run.pk)

    assert run.status == ModelRun.DONE and run.n_done == 9
    with run.artifact.open("rb") as fh:
        got = from_npz(fh)
    assert got.video_ids == expected_vids and got.class_names == class_names()
    for m in ("a", "v", "av"):
        np.testing.assert_array_equal(got.scores[m], np.concatenate(expected[m]), err_msg=m)
    assert not got.scores["v"][4:7].any()  # the chunk without visual scores: zeros, rows still aligned
    with run.artifact.open("rb") as fh:
        rows = NpzRows(fh)
        assert not rows.loaded  # every member stored: rows are read where they lie
        np.testing.assert_array_equal(rows.rows("scores_av", 5, 8), np.concatenate(expected["av"])[5:8])
    for chunk in chunks:  # merged: the chunks' files are freed
        chunk.refresh_from_db()
        assert not chunk.artifact


def test_a_member_whose_parts_do_not_fill_its_shape_is_refused():
    parts = [np.ones((2, 3), np.float32), np.ones((1, 3), np.float32)]
    with pytest.raises(ValueError, match=r"scores_a: 36 bytes written for a member of shape \(4, 3\)"):
        write_npz_stream(io.BytesIO(), [("scores_a", (4, 3), np.float32, parts)])
    with pytest.raises(ValueError, match=r"a part of shape \(2, 4\)"):
        write_npz_stream(io.BytesIO(), [("scores_a", (2, 3), np.float32, [np.ones((2, 4), np.float32)])])
    out = io.BytesIO()
    write_npz_stream(
        out, [("scores_a", (3, 3), np.float32, parts), ("ids", (2,), np.dtype("<U3"), [np.array(["x", "yz"])])]
    )
    out.seek(0)
    with np.load(out) as z:  # what np.savez would have written
        np.testing.assert_array_equal(z["scores_a"], np.ones((3, 3), np.float32))
        assert z["ids"].tolist() == ["x", "yz"]
