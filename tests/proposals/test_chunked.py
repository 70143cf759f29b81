"""The strategy applied a block of clips at a time (what make_proposals runs) against the whole-dataset reference
(apply_strategy), on data with ties inside clips and at the consensus pool's global cut, and with block edges
inside the data; the run artifacts read a block of rows at a time; a stored set against the reference."""

import io
import json

import numpy as np
import pytest

from proposals.core.predictions_io import NpzRows, PredictionArrays, to_npz_bytes
from proposals.core.strategy import (
    ChunkedStrategy,
    ConsensusConfig,
    GlobalCut,
    PredictionRows,
    Predictions,
    Strategy,
    StrategyError,
    apply_strategy,
    apply_strategy_chunked,
    within_clip_ranks,
)

N, C = 97, 23
NAMES = [f"c{j}" for j in range(C)]


def tied_predictions(seed=0):
    """Scores on a coarse grid (many equal scores within a clip and across the matrix), a model covering only
    part of the clips, a label-set model, original labels."""
    rng = np.random.default_rng(seed)
    vids = [f"v{i:03d}" for i in range(N)]
    scores = {
        m: {mod: rng.integers(0, 6, (N, C)).astype(np.float32) / 2 for mod in ("a", "v", "av")}
        for m in ("m0", "m1", "m2")
    }
    del scores["m2"]["v"]  # a model without visual scores
    coverage = {"m1": rng.random(N) < 0.8}
    scores["m1"] = {
        mod: np.where(coverage["m1"][:, None], a, np.finfo(np.float32).min) for mod, a in scores["m1"].items()
    }
    label_sets = {"llm": {"av": rng.random((N, C)) < 0.1, "a": rng.random((N, C)) < 0.05}}
    original = np.zeros((N, C), dtype=bool)
    original[np.arange(N), rng.integers(0, C, N)] = True
    return Predictions(
        class_names=NAMES,
        video_ids=vids,
        scores=scores,
        label_sets=label_sets,
        original=original,
        coverage=coverage,
    )


STRATEGIES = {
    "default rules": Strategy(
        topk={"a": 3, "v": 1, "av": 2},
        topk_per_model={"m0": {"v": 4}},
        consensus=ConsensusConfig(k=2, global_n=150, min_models=2),
        common_classes=["c5", "c7"],
    ),
    "global cut alone, one model enough": Strategy(
        original_label=False,
        topk={},
        common_classes=[],
        label_set_models=False,
        consensus=ConsensusConfig(k=0, global_n=333, min_models=1, models=["m0", "m2"], modalities=["a", "av"]),
    ),
    "cut wider than a matrix": Strategy(
        consensus=ConsensusConfig(k=1, global_n=N * C + 5, min_models=3), common_classes=["c0"]
    ),
    "no consensus": Strategy(consensus=ConsensusConfig(k=0, global_n=0), label_set_models=True, common_classes=[]),
}


def assert_same(got, ref):
    assert got.video_ids == ref.video_ids
    assert got.sources == ref.sources
    np.testing.assert_array_equal(got.proposed, ref.proposed)
    assert set(got.rule_masks) == set(ref.rule_masks)
    for rule in ref.rule_masks:
        np.testing.assert_array_equal(got.rule_masks[rule], ref.rule_masks[rule], err_msg=rule)
    for src, a, b in zip(ref.sources, got.source_masks, ref.source_masks):
        np.testing.assert_array_equal(a, b, err_msg=str(src))
    assert list(got.records_json()) == list(ref.records_json())


@pytest.mark.parametrize("name", list(STRATEGIES))
@pytest.mark.parametrize("chunk", [1, 10, 41, 1000])
def test_blocks_give_the_reference_proposals_and_provenance(name, chunk):
    preds = tied_predictions()
    strategy = STRATEGIES[name]
    ref = apply_strategy(strategy, preds)
    assert ref.proposed.any() and not ref.proposed.all()
    assert_same(apply_strategy_chunked(strategy, preds, chunk=chunk), ref)


def test_the_global_cut_falls_inside_a_tie_that_spans_blocks():
    """The data of the test above does exercise the tie rule: at the cut some entries equal to the threshold are
    in and later ones are out, and those entries lie in several blocks."""
    preds = tied_predictions()
    scores = preds.scores["m0"]["a"]
    cut = GlobalCut.find(lambda a, b: scores[a:b], N, 333, 10)
    equal = np.flatnonzero(scores.ravel() == cut.threshold)
    assert 0 < cut.ties < equal.size
    assert len({int(i) // (10 * C) for i in equal[: cut.ties]}) > 1
    # the entries taken are the reference's: the first `ties` equal ones in row-major order
    ref = apply_strategy(STRATEGIES["global cut alone, one model enough"], preds)
    pool = ref.source_masks[ref.sources.index(("consensus", "m0", "a"))]
    assert pool.ravel()[equal[: cut.ties]].all() and not pool.ravel()[equal[cut.ties :]].any()


def test_blocks_keep_every_clip_in_order_and_each_result_is_its_own_clips():
    preds = tied_predictions()
    plan = ChunkedStrategy(STRATEGIES["default rules"], PredictionRows.from_predictions(preds), chunk=40)
    parts = list(plan.chunks())
    assert [s for s, _ in parts] == [0, 40, 80]
    assert [v for _, p in parts for v in p.video_ids] == preds.video_ids
    # the second pass of the same plan gives the same blocks (the tie quota starts over)
    again = list(plan.chunks())
    for (_, a), (_, b) in zip(parts, again):
        np.testing.assert_array_equal(a.proposed, b.proposed)


@pytest.mark.parametrize("k", [0, 1, 2, 3, 7, C - 1, C, C + 2])
def test_topk_by_partition_is_the_stable_rank(k):
    from proposals.core.strategy import topk_mask

    scores = tied_predictions(seed=3).scores["m0"]["av"]
    scores[0] = 1.0  # a clip where every class ties
    scores[1, ::2] = -0.0  # signed zeros tie with zeros
    scores[1, 1::2] = 0.0
    np.testing.assert_array_equal(topk_mask(scores, k), within_clip_ranks(scores) < k)


def test_bad_scores_and_bad_strategies_are_refused_before_any_block():
    preds = tied_predictions()
    preds.scores["m0"]["v"][50, 3] = np.nan  # Predictions checks at construction; the block reader may not
    rows = PredictionRows.from_predictions(preds)
    with pytest.raises(StrategyError, match=r"scores\['m0'\]\['v'\] contains 1 NaN"):
        ChunkedStrategy(Strategy(common_classes=[]), rows, chunk=16)
    good = PredictionRows.from_predictions(tied_predictions())
    with pytest.raises(StrategyError, match="unknown model"):
        ChunkedStrategy(Strategy(consensus=ConsensusConfig(models=["nope"]), common_classes=[]), good)
    with pytest.raises(StrategyError, match="unknown class name 'thunder'"):
        ChunkedStrategy(Strategy(common_classes=["thunder"]), good)


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_rows_read_blocks_and_scattered_rows_like_the_whole_array(compressed):
    rng = np.random.default_rng(1)
    arrays = PredictionArrays(
        [f"v{i}" for i in range(50)],
        NAMES,
        {"a": rng.standard_normal((50, C)).astype(np.float32)},
        {"av": rng.random((50, C)) < 0.3},
    )
    if compressed:
        buf = io.BytesIO()
        np.savez_compressed(buf, video_ids=np.asarray(arrays.video_ids), scores_a=arrays.scores["a"])
        data = buf.getvalue()
    else:
        data = to_npz_bytes(arrays)
    npz = NpzRows(io.BytesIO(data))
    assert [str(v) for v in npz.array("video_ids")] == arrays.video_ids
    whole = arrays.scores["a"]
    np.testing.assert_array_equal(npz.rows("scores_a", 7, 19), whole[7:19])
    np.testing.assert_array_equal(npz.rows("scores_a", 45, 60), whole[45:])
    index = np.array([3, 4, 5, 40, 0, 1, 22, 21])
    np.testing.assert_array_equal(npz.take("scores_a", index), whole[index])
    if not compressed:
        np.testing.assert_array_equal(npz.take("labels_av", index), arrays.labels["av"][index])


def test_npz_rows_refuse_a_file_that_is_not_an_artifact():
    from proposals.core.predictions_io import PredictionFileError

    with pytest.raises(PredictionFileError, match="not a readable .npz"):
        NpzRows(io.BytesIO(b"not a zip file"), where="model run x")


# ------------------------------------------------------------------------------------------------
# the stored set
# ------------------------------------------------------------------------------------------------


def _run(dataset, name, vids, scores=None, labels=None):
    from django.core.files.base import ContentFile

    from catalog.selectors.taxonomy import class_names
    from proposals.models import ModelRun

    arrays = PredictionArrays(vids, class_names(), scores or {}, labels or {})
    run = ModelRun(
        dataset=dataset,
        external_name=name,
        kind="scores" if scores else "labels",
        modalities=sorted((scores or labels).keys()),
        status=ModelRun.DONE,
        n_clips=len(vids),
        n_done=len(vids),
    )
    run.artifact.save(f"{dataset.name}-{name}.npz", ContentFile(to_npz_bytes(arrays)), save=False)
    run.save()
    return run


def test_stored_set_equals_the_whole_dataset_reference(dataset, taxonomy, settings, tmp_path):
    """make_proposals' blocks (here of 7 clips over 60) store exactly the proposals, provenance and evaluation of
    apply_strategy over the whole dataset; runs whose clips come in another order, cover only some clips, or are
    label sets included."""
    from catalog.models import Clip, GoldLabel, TaxonomyClass
    from proposals.core.evaluation import Gold, evaluate
    from proposals.models import Proposal
    from proposals.selectors import dataset_predictions
    from proposals.services import proposal_set_create

    settings.MEDIA_ROOT = str(tmp_path)
    rng = np.random.default_rng(7)
    n = 60
    vids = [f"clip{i:02d}" for i in range(n)]
    classes = list(TaxonomyClass.objects.order_by("index"))
    clips = Clip.objects.bulk_create(
        [Clip(dataset=dataset, video_id=v, is_gold=i % 6 == 0) for i, v in enumerate(vids)]
    )
    for i, clip in enumerate(clips):
        clip.original_labels.add(classes[(7 * i) % 309])
        if clip.is_gold:
            GoldLabel.objects.create(clip=clip, cls=classes[(7 * i) % 309], modality="av")
            GoldLabel.objects.create(clip=clip, cls=classes[(11 * i + 3) % 309], modality="a")

    def grid(rows):
        return (rng.integers(0, 8, (rows, 309)) / 4).astype(np.float32)  # ties everywhere

    _run(dataset, "m0", vids, scores={m: grid(n) for m in ("a", "v", "av")})
    shuffled = list(rng.permutation(vids)[:45])  # another order, 15 clips missing
    _run(dataset, "m1", shuffled, scores={m: grid(45) for m in ("a", "av")})
    _run(dataset, "llm.judge", vids[::-1], labels={"av": rng.random((n, 309)) < 0.02})
    strategy = Strategy(consensus=ConsensusConfig(k=3, global_n=500, min_models=2))

    pset = proposal_set_create(dataset, strategy, chunk=7)

    preds = dataset_predictions(dataset)
    ref = apply_strategy(strategy, preds)
    stored = {
        (vid, name): prov
        for vid, name, prov in Proposal.objects.filter(proposal_set=pset).values_list(
            "clip__video_id", "cls__name", "provenance"
        )
    }
    expected = {(vid, name): json.loads(prov) for vid, name, prov in ref.records_json()}
    assert len(expected) > 60 * 8 and stored == expected
    assert pset.n_proposals == len(expected)
    from catalog.selectors.gold import dataset_gold

    report = evaluate(ref, Gold.from_labels(preds, dataset_gold(dataset)))
    assert set(ref.rule_masks) == {"original", "topk", "label_set", "consensus", "common"}
    assert all(mask.any() for mask in ref.rule_masks.values())
    pset.refresh_from_db()
    assert pset.evaluation == report
    assert pset.evaluation["n_gold_labels"] == 20


def test_provenance_groups_are_the_records():
    preds = tied_predictions()
    for part in (apply_strategy(STRATEGIES["default rules"], preds), apply_strategy(STRATEGIES["no consensus"], preds)):
        ii, jj, group, texts = part.provenance_groups()
        rows = [(part.video_ids[i], part.class_names[j], texts[g]) for i, j, g in zip(ii, jj, group)]
        assert rows == list(part.records_json())
        assert len(set(texts)) == len(texts)
