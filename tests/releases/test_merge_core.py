"""Pure merge core on hand-computed cases (no database)."""

import numpy as np
import pytest

from labels.core.card import compare_methods
from labels.core.merge import merge, merge_dawid_skene, merge_majority, merge_weighted
from labels.core.quality import macro_f1, worker_quality_from_gold
from labels.core.votes import Votes

CLASSES = ["dog barking", "cat meowing", "playing piano", "rain"]


def ann(clip, worker, labels=(), meta=(False, False, False), group=None):
    out = {"clip": clip, "worker": worker, "labels": list(labels), "meta": meta}
    if group is not None:
        out["group"] = group
    return out


def test_top_k_majority_per_flag_and_meta():
    annotations = [
        # c1: four annotators; the 0.1 one must be dropped from the vote
        ann("c1", "w9", [("dog barking", True, False), ("cat meowing", True, True)], (True, False, False)),
        ann("c1", "w8", [("dog barking", False, True), ("cat meowing", True, False)], (True, True, False)),
        ann("c1", "w1", [("dog barking", True, False), ("rain", True, True)], (False, True, True)),
        ann("c1", "w7", [("dog barking", False, True), ("cat meowing", False, True)], (False, False, True)),
    ]
    quality = {"w9": 0.9, "w8": 0.8, "w1": 0.1, "w7": 0.7}
    votes, _ = Votes.from_records(["c1"], CLASSES, annotations, quality)
    res = merge_majority(votes, k=3)
    # dog barking: audible 1/3 among kept (w1 dropped) -> no; visible 2/3 -> V
    # cat meowing: audible 2/3, visible 2/3 -> AV ; rain only by the dropped w1 -> absent
    assert res.label_sets(["c1"], CLASSES) == {"c1": {"dog barking": "V", "cat meowing": "AV"}}
    # background music 2/3 yes, voice over 1/3 (w1 dropped), static image 1/3
    assert res.meta_of(["c1"]) == {"c1": {"background_music": True, "voice_over": False, "static_image": False}}
    assert res.used.tolist() == [True, True, False, True]


def test_clips_below_k_need_annotation_and_unknown_quality_ranks_last():
    annotations = [
        ann("a", "x", [("rain", True, False)]),
        ann("a", "y", [("rain", True, False)]),
        ann("b", "x", [("rain", True, False)]),
        ann("b", "y", [("rain", False, False)]),
        ann("b", "z", [("rain", True, False)]),  # z has no catch score -> ranked last, dropped at k=2
    ]
    votes, _ = Votes.from_records(["a", "b", "c"], CLASSES, annotations, {"x": 0.5, "y": 0.6})
    res = merge_majority(votes, k=2)
    assert res.needs_annotation.tolist() == [2]  # clip "c" has none
    # b: kept x (yes) and y (no): 1 of 2 is no strict majority -> rain absent
    assert res.label_sets(["a", "b", "c"], CLASSES) == {"a": {"rain": "A"}, "b": {}}
    res3 = merge_majority(votes, k=3)
    assert sorted(res3.needs_annotation.tolist()) == [0, 2]
    assert res3.label_sets(["a", "b", "c"], CLASSES) == {"b": {"rain": "A"}}


def test_weighted_voting_follows_the_better_annotator():
    annotations = [
        ann("c", "good", [("playing piano", True, True)]),
        ann("c", "bad1", []),
        ann("c", "bad2", [("playing piano", False, True)]),
    ]
    votes, _ = Votes.from_records(["c"], CLASSES, annotations, {"good": 0.9, "bad1": 0.2, "bad2": 0.3})
    # audible: 0.9 yes vs 0.5 no -> yes; visible: 1.2 of 1.4 -> yes
    assert merge_weighted(votes).label_sets(["c"], CLASSES) == {"c": {"playing piano": "AV"}}
    # plain majority: audible 1/3 -> no, visible 2/3 -> V
    assert merge_majority(votes).label_sets(["c"], CLASSES) == {"c": {"playing piano": "V"}}


def test_repeated_ticks_are_counted_once():
    annotations = [
        ann("c", "a", [("rain", True, False), ("rain", True, False)]),
        ann("c", "b", []),
        ann("c", "d", []),
    ]
    votes, _ = Votes.from_records(["c"], CLASSES, annotations, {"a": 1, "b": 1, "d": 1})
    assert merge(votes, "majority").label_sets(["c"], CLASSES) == {"c": {}}


def test_unknown_method_and_bad_arrays_are_refused():
    votes, _ = Votes.from_records(["c"], CLASSES, [ann("c", "a")])
    with pytest.raises(ValueError, match="allowed: majority, weighted, dawid_skene"):
        merge(votes, "median")
    with pytest.raises(ValueError, match="tick_class"):
        Votes(
            n_clips=1,
            n_classes=2,
            ann_clip=[0],
            ann_worker=[0],
            ann_meta=[[0, 0, 0]],
            tick_ann=[0],
            tick_class=[5],
            tick_audible=[1],
            tick_visible=[0],
            worker_quality=[0.5],
        )


def _ds_world(n_clips=60, seed=0):
    """Two careful workers, three who tick 'rain' audible on every clip and nothing else."""
    rng = np.random.default_rng(seed)
    clips = [f"c{i}" for i in range(n_clips)]
    truth = {c: bool(rng.random() < 0.4) for c in clips}
    annotations = []
    for c in clips:
        for w in ("g1", "g2"):
            annotations.append(ann(c, w, [("rain", True, False)] if truth[c] else []))
        for w in ("s1", "s2", "s3"):
            annotations.append(ann(c, w, [("rain", True, False)]))
    return clips, truth, annotations


def test_dawid_skene_discounts_workers_who_always_say_yes():
    clips, truth, annotations = _ds_world()
    votes, _ = Votes.from_records(clips, CLASSES, annotations)
    gold = {i: ({3: "A"} if truth[c] else {}) for i, c in enumerate(clips[:10])}
    ds = merge_dawid_skene(votes, k=3, gold=gold).label_sets(clips, CLASSES)
    maj = merge_majority(votes, k=5).label_sets(clips, CLASSES)
    ds_correct = sum(("rain" in ds[c]) == truth[c] for c in clips)
    maj_correct = sum(("rain" in maj[c]) == truth[c] for c in clips)
    assert ds_correct == len(clips)
    assert maj_correct == sum(truth.values())  # majority says rain everywhere


def test_dawid_skene_clamps_gold_clips_to_the_gold_answer():
    clips, truth, annotations = _ds_world()
    votes, _ = Votes.from_records(clips, CLASSES, annotations)
    # claim clip 0 has a visible piano that nobody ticked; clamping must put it in that clip's set
    gold = {0: {2: "V"}}
    res = merge_dawid_skene(votes, gold=gold).label_sets(clips, CLASSES)
    assert res["c0"] == {"playing piano": "V"}


def test_worker_quality_pools_catch_clips_per_assignment():
    # gold: g1 {rain: AV}, g2 {dog: A}; one assignment covers both gold clips
    annotations = [
        ann("g1", "w", [("rain", True, False)], group="as1"),  # tp 1, fn 1
        ann("g2", "w", [("dog barking", True, True)], group="as1"),  # tp 1, fp 1
        ann("g1", "w", [], group="as2"),  # tp 0, fn 2 -> F1 0
    ]
    votes, _ = Votes.from_records(["g1", "g2"], CLASSES, annotations)
    gold = {0: {3: "AV"}, 1: {0: "A"}}
    q = worker_quality_from_gold(votes, gold)
    # as1 pooled: tp 2, fp 1, fn 1 -> F1 4/6; as2: 0 -> mean 1/3
    assert q[0] == pytest.approx((4 / 6 + 0) / 2)
    # leaving g2 out: as1 -> tp1 fn1 -> 2/3; as2 -> 0
    assert worker_quality_from_gold(votes, gold, exclude_clips=[1])[0] == pytest.approx((2 / 3 + 0) / 2)


def test_macro_f1_by_hand():
    gold = {"a": {"rain": "AV", "dog barking": "A"}, "b": {"rain": "A"}}
    pred = {"a": {"rain": "A", "cat meowing": "V"}, "b": {"rain": "A"}}
    macro, per_class = macro_f1(pred, gold)
    # rain: tp 2 (a-aud, b-aud), fn 1 (a-vis) -> 4/5; dog: fn 1 -> 0; cat: fp 1 -> 0
    assert per_class == pytest.approx({"rain": 0.8, "dog barking": 0.0, "cat meowing": 0.0})
    assert macro == pytest.approx(0.8 / 3)


def test_leave_one_out_never_uses_the_clip_own_gold_answer():
    # worker A is right on g1 and wrong on g2, worker B the opposite. Scored on the other clip only, the
    # top-1 annotator is always the wrong one -> macro-F1 0. Using each clip's own answer would give 1.
    annotations = [
        ann("g1", "A", [("rain", True, False)]),
        ann("g1", "B", [("dog barking", True, False)]),
        ann("g2", "A", [("rain", True, False)]),
        ann("g2", "B", [("dog barking", True, False)]),
    ]
    votes, _ = Votes.from_records(["g1", "g2"], CLASSES, annotations)
    gold = {0: {3: "A"}, 1: {0: "A"}}
    out = compare_methods(votes, gold, methods=("majority",), k=1)
    assert out["majority"]["macro_f1"] == 0.0
    assert out["majority"]["n_clips"] == 2 and out["majority"]["folds"] == 2


def test_compare_ranks_dawid_skene_above_majority_with_spammers():
    clips, truth, annotations = _ds_world(n_clips=40, seed=1)
    votes, _ = Votes.from_records(clips, CLASSES, annotations)
    gold = {i: ({3: "A"} if truth[c] else {}) for i, c in enumerate(clips[:20])}
    out = compare_methods(votes, gold, k=5, ds_folds=4)
    assert out["dawid_skene"]["macro_f1"] == pytest.approx(1.0)
    assert out["majority"]["macro_f1"] < 1.0
    assert set(out) == {"majority", "weighted", "dawid_skene", "shrunk_ds", "modality_ds"}
    assert out["shrunk_ds"]["macro_f1"] == pytest.approx(1.0) and out["modality_ds"]["macro_f1"] == pytest.approx(1.0)


@pytest.mark.parametrize("with_gold", [False, True])
def test_numpy_dawid_skene_gives_crowd_kits_posteriors(with_gold):
    """The vectorised EM (labels.core.dawid_skene) against crowd-kit's DawidSkene, the reference it
    replaces: same posteriors, same number of iterations, same evidence lower bound per step."""
    import warnings

    import pandas as pd
    from crowdkit.aggregation import DawidSkene

    from labels.core.dawid_skene import dawid_skene_binary

    rng = np.random.default_rng(3)
    n_tasks, n_workers, per = 600, 25, 4
    truth = rng.random(n_tasks) < 0.3
    accuracy = rng.uniform(0.5, 0.95, n_workers)
    task = np.repeat(np.arange(n_tasks), per) * 3 + 7  # sparse task ids, as merge_dawid_skene makes them
    worker = rng.integers(0, n_workers, len(task)) * 5
    row = (task - 7) // 3
    label = np.where(rng.random(len(task)) < accuracy[worker // 5], truth[row], ~truth[row])
    gold_t = np.unique(task)[:40] if with_gold else np.zeros(0, np.int64)
    gold_v = truth[(gold_t - 7) // 3]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = DawidSkene(n_iter=100, tol=1e-5).fit(
            pd.DataFrame({"task": task, "worker": worker, "label": label}),
            true_labels=pd.Series(gold_v, index=gold_t) if with_gold else None,
        )
    ours = dawid_skene_binary(task, worker, label, true_task=gold_t, true_label=gold_v)
    expected = ref.probas_[True].reindex(ours.tasks).to_numpy()
    assert np.abs(expected - ours.p_true).max() < 1e-9  # crowd-kit floors its output at 1e-10
    assert ours.n_iter == len(ref.loss_history_) > 2
    assert np.allclose(ours.elbo, ref.loss_history_, rtol=0, atol=1e-12)
    assert ((ours.p_true > 0.5) == truth[(ours.tasks - 7) // 3]).mean() > 0.75  # 4 answers, workers 50-95 % right
    if with_gold:
        assert np.array_equal(ours.p_true[:40], gold_v.astype(float))


def _random_votes(seed=3, n_clips=60, n_workers=12):
    rng = np.random.default_rng(seed)
    clips = [f"c{i}" for i in range(n_clips)]
    annotations = []
    for clip in clips:
        for w in rng.choice(n_workers, 3, replace=False):
            labels = [(CLASSES[k], bool(rng.random() < 0.6), bool(rng.random() < 0.4)) for k in range(4)]
            meta = tuple(bool(x) for x in rng.random(3) < 0.3)
            annotations.append(ann(clip, f"w{w}", labels if w % 4 else labels[:1], meta))
    votes, _ = Votes.from_records(clips, CLASSES, annotations)
    return clips, votes


def test_dawid_skene_in_small_chunks_gives_the_same_release(monkeypatch):
    """The long answer table is built and the EM passes run chunk by chunk (bounded memory at 150k clips): chunk
    boundaries anywhere give the same labels, meta labels and iteration count."""
    import labels.core.dawid_skene as ds
    import labels.core.merge as merge_mod

    clips, votes = _random_votes()
    gold = {0: {0: "AV"}, 1: {2: "A"}}
    whole = merge_dawid_skene(votes, k=3, gold=gold)
    monkeypatch.setattr(ds, "CHUNK", 37)
    monkeypatch.setattr(merge_mod, "DS_ATOM_CHUNK", 5)
    chunked = merge_dawid_skene(votes, k=3, gold=gold)
    assert chunked.label_sets(clips, CLASSES) == whole.label_sets(clips, CLASSES)
    assert chunked.meta_of(clips) == whole.meta_of(clips)
    assert chunked.params["iterations"] == whole.params["iterations"]
    assert len(whole.label_clip) > 20


def test_sort_based_unique_matches_numpy():
    from labels.core.votes import sorted_unique, unique_inverse

    key = np.random.default_rng(0).integers(0, 500, 4000)
    u, inv = unique_inverse(key)
    ref_u, ref_inv = np.unique(key, return_inverse=True)
    assert u.tolist() == ref_u.tolist() and inv.tolist() == ref_inv.tolist()
    assert sorted_unique(key).tolist() == ref_u.tolist()
    assert unique_inverse(np.zeros(0, np.int64))[0].size == 0


@pytest.mark.parametrize("n", [1, 7, 129, 1000, 70_001, 300_000])
def test_pairwise_sum_in_chunks_is_numpys_sum(n):
    """Dawid-Skene's entropy term is summed without materialising the task-sized array; the float is the one
    np.sum gives, so the stopping rule and the recorded evidence do not move."""
    from labels.core.dawid_skene import _pairwise_sum

    x = np.random.default_rng(n).random(n) * 1e3 - 400
    for leaf in (128, 4096, 1 << 16):  # leaves of at least numpy's 128-value block
        assert _pairwise_sum(lambda lo, hi: x[lo:hi], 0, n, leaf) == np.sum(x)


def test_dawid_skene_ignores_clips_nobody_annotated_and_keeps_the_callers_arrays():
    """Unannotated clips leave no gap in the task ids (meta tasks are numbered by annotated clip); the labels
    of the others are those of the same votes without them. The EM reads `task` and leaves `worker` alone
    unless told to overwrite it."""
    from labels.core.dawid_skene import dawid_skene_binary
    from labels.core.merge import _ds_answers
    from labels.core.votes import _atoms

    clips, votes = _random_votes()
    gaps = [c for i, c in enumerate(clips) for c in ([c, f"nobody{i}"] if i % 3 == 0 else [c])]
    records = [
        ann(clip, f"w{int(w)}", [(CLASSES[k], bool(a), bool(v)) for k, a, v in zip(*lab)], tuple(m))
        for clip, w, lab, m in _records_of(clips, votes)
    ]
    with_gaps, _ = Votes.from_records(gaps, CLASSES, records)
    a = merge_dawid_skene(votes, k=3)
    b = merge_dawid_skene(with_gaps, k=3)
    assert b.label_sets(gaps, CLASSES) == a.label_sets(clips, CLASSES)
    assert b.meta_of(gaps) == a.meta_of(clips)
    assert b.params["iterations"] == a.params["iterations"]
    assert len(b.needs_annotation) > len(a.needs_annotation)

    atoms = _atoms(with_gaps)
    task, worker, label = _ds_answers(with_gaps, atoms, np.ones(len(with_gaps.ann_clip), bool), 5)
    assert np.array_equal(np.unique(task), np.arange(task.max() + 1))  # dense
    before = worker.copy()
    kept = dawid_skene_binary(task, worker, label)
    assert np.array_equal(worker, before)
    spent = dawid_skene_binary(task, worker, label, overwrite=True)
    assert np.array_equal(kept.p_true, spent.p_true) and kept.n_iter == spent.n_iter
    assert np.array_equal(kept.tasks, np.arange(task.max() + 1))


def _records_of(clips, votes):
    """(clip, worker, ([class], [audible], [visible]), meta) per annotation of `votes`."""
    out = []
    for i, c in enumerate(votes.ann_clip.tolist()):
        sel = votes.tick_ann == i
        lab = (votes.tick_class[sel].tolist(), votes.tick_audible[sel].tolist(), votes.tick_visible[sel].tolist())
        out.append((clips[c], votes.ann_worker[i], lab, votes.ann_meta[i].tolist()))
    return out
