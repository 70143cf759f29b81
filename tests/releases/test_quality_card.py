"""The release quality card (labels.core.card) on simulated crowds with known truth (labels.core.simcrowd): figures
measured leave-one-out on gold, never from a gold clip's own labels; one vote per annotator and clip in every
merge method."""

import numpy as np
import pytest

from labels.core.card import leave_out_predictions, quality_card, score_predictions, worker_quality
from labels.core.merge import METHODS, merge
from labels.core.simcrowd import fixed_overlap, make_crowd, vggsounder_truth
from labels.core.votes import MOD_A, MOD_V, Votes

CLASSES = ["dog barking", "cat meowing", "playing piano", "rain"]


@pytest.fixture(scope="module")
def world():
    names, truth = vggsounder_truth(limit=60 + 540, seed=3)
    crowd = make_crowd(names, truth, n_gold=60, n_workers=40, seed=3)
    votes, catch, log = fixed_overlap(crowd)
    return crowd, votes, catch, log


def _flip(labels: dict) -> dict:
    """Another answer for a gold clip: every modality inverted, plus a class it did not have."""
    out = {k: (m ^ (MOD_A | MOD_V)) or MOD_A for k, m in labels.items()}
    out[max(labels, default=0) + 1] = MOD_V
    return out


@pytest.mark.parametrize("method", METHODS)
def test_a_gold_clip_is_merged_without_its_own_gold(world, method):
    crowd, votes, catch, _log = world
    gold = crowd.gold
    base = leave_out_predictions(votes, gold, method, k=3, catch_clips=catch, em_folds=5)
    clip = base["clips"][0]
    changed = {**gold, clip: _flip(gold[clip])}
    # the change is visible to anything that reads the clip's gold: annotator quality computed in-sample moves ...
    assert not np.allclose(worker_quality(votes, gold, catch), worker_quality(votes, changed, catch), equal_nan=True)
    # ... but the leave-out merge of that clip is exactly the same
    after = leave_out_predictions(votes, changed, method, k=3, catch_clips=catch, em_folds=5)
    assert after["labels"][clip] == base["labels"][clip]
    assert after["meta"][clip] == base["meta"][clip]


def test_a_worker_perfect_only_on_one_gold_clip_does_not_rank_first_there():
    # P answered one gold clip only, g1, and copied its gold there; A and B say "rain" on g1 and are right on g2, g3.
    # Ranked by a catch F1 that includes g1 itself, P (F1 1.0) would be the top annotator of g1 and g1 would be right.
    annotations = [{"clip": "g1", "worker": "P", "labels": [("dog barking", True, False)]}]
    for clip, gold_cls in (("g1", "dog barking"), ("g2", "cat meowing"), ("g3", "playing piano")):
        for w in ("A", "B"):
            annotations.append(
                {"clip": clip, "worker": w, "labels": [("rain" if clip == "g1" else gold_cls, True, False)]}
            )
    votes, workers = Votes.from_records(["g1", "g2", "g3"], CLASSES, annotations)
    gold = {0: {0: "A"}, 1: {1: "A"}, 2: {2: "A"}}
    card = quality_card(votes, gold, "majority", k=1, n_boot=50)
    assert card["evaluation"].startswith("leave-one-out")
    # g1 is wrong (rain instead of dog), g2 and g3 right: 2 TP, 1 FP, 1 FN
    assert card["micro_f1"] == pytest.approx(4 / 6, abs=1e-4)
    assert card["per_class"][0]["fn"] == 1 and card["per_class"][3]["fp"] == 1
    # in-sample ranking would have put P first on g1
    in_sample = merge(votes, "majority", k=1, worker_quality=worker_quality(votes, gold))
    assert in_sample.label_sets()[0] == {0: "A"}
    # a release sets the votes' quality to the in-sample figure before measuring its card: still no leak
    votes.worker_quality = worker_quality(votes, gold)
    again = quality_card(votes, gold, "majority", k=1, n_boot=50)
    assert again["micro_f1"] == card["micro_f1"]


def test_card_agrees_with_the_truth_of_the_clips_it_does_not_see(world):
    crowd, votes, catch, log = world
    card = quality_card(
        votes, crowd.gold, "majority", k=3, catch_clips=catch, gold_meta=crowd.gold_meta(), n_boot=300, seed=1
    )
    assert card["available"] and card["clips"] >= 40
    for key in ("micro_f1", "macro_f1"):
        lo, hi = card[f"{key}_ci95"]
        assert lo <= card[key] <= hi and hi - lo < 0.3
    assert set(card["modality"]) == {"audible", "visible"}
    assert set(card["meta"]) == {"background_music", "voice_over", "static_image"}
    assert all(m is not None and 0 <= m["accuracy"] <= 1 for m in card["meta"].values())
    # the same merge scored against the (unseen) truth of the non-gold clips lands inside the card's interval
    res = merge(votes, "majority", k=3, worker_quality=worker_quality(votes, crowd.gold, catch))
    sets = res.label_sets()
    others = [c for c in sets if c >= len(crowd.gold_clips)]
    truth = score_predictions(sets, {c: crowd.truth[c] for c in others}, others, n_boot=0)
    lo, hi = card["micro_f1_ci95"]
    assert lo - 0.03 <= truth["micro_f1"] <= hi + 0.03
    # fixed seed: the same card twice
    again = quality_card(
        votes, crowd.gold, "majority", k=3, catch_clips=catch, gold_meta=crowd.gold_meta(), n_boot=300, seed=1
    )
    assert again == card


def test_micro_and_macro_by_hand():
    gold = {0: {0: MOD_A | MOD_V, 1: MOD_A}, 1: {0: MOD_A}}
    pred = {0: {0: MOD_A, 2: MOD_V}, 1: {0: MOD_A}}
    card = score_predictions(pred, gold, [0, 1], n_boot=0)
    # atoms: tp 2 (0/0/A, 1/0/A), fp 1 (0/2/V), fn 2 (0/0/V, 0/1/A) -> micro 4/7
    assert card["micro_f1"] == pytest.approx(round(4 / 7, 4))
    # class 0: tp 2 fn 1 -> 0.8; class 1: 0; class 2: 0 -> macro 0.8/3
    assert card["macro_f1"] == pytest.approx(round(0.8 / 3, 4))
    assert card["modality"]["audible"]["micro_f1"] == pytest.approx(round(4 / 5, 4))  # tp 2, fn 1
    assert card["modality"]["visible"]["micro_f1"] == 0.0


def test_no_gold_no_card():
    votes, _ = Votes.from_records(["c"], CLASSES, [{"clip": "c", "worker": "w", "labels": []}])
    assert quality_card(votes, {}, "majority")["available"] is False
    card = quality_card(votes, {0: {0: "A"}}, "majority", k=3)
    assert card["available"] is False and "3 or more" in card["reason"]


@pytest.mark.parametrize("method", METHODS)
def test_one_vote_per_annotator_latest_submission_counts(method):
    # A (the best annotator) answered c twice: first "rain", later "dog". Counting both, A's two votes plus B's
    # rain would carry rain among the top 3; one vote each, A (dog), B (rain), C (dog) -> dog.
    annotations = [
        {"clip": "c", "worker": "A", "labels": [("rain", True, False)]},
        {"clip": "c", "worker": "B", "labels": [("rain", True, False)]},
        {"clip": "c", "worker": "A", "labels": [("dog barking", True, False)]},
        {"clip": "c", "worker": "C", "labels": [("dog barking", True, False)]},
    ]
    votes, _ = Votes.from_records(["c"], CLASSES, annotations, {"A": 0.9, "B": 0.8, "C": 0.7})
    res = merge(votes, method, k=3)
    assert res.label_sets() == {0: {0: "A"}}
    assert res.duplicate.tolist() == [True, False, False, False]
    assert res.used.tolist() == [False, True, True, True]
    assert res.params["duplicate_votes_ignored"] == 1


def test_simulated_crowd_is_calibrated_to_the_published_figures(world):
    crowd, votes, catch, log = world
    shares = {"A": 0, "V": 0, "AV": 0}
    for labels in crowd.truth:
        for m in labels.values():
            shares[{MOD_A: "A", MOD_V: "V", MOD_A | MOD_V: "AV"}[m]] += 1
    # VGGSounder: AV dominates, visible-only is rare
    assert shares["AV"] > shares["A"] > shares["V"]
    per_clip = np.bincount(votes.ann_clip, minlength=votes.n_clips)[len(crowd.gold_clips) :]
    assert per_clip.min() >= 3 and per_clip.max() <= 5
    below = np.mean(np.array(log["catch_f1"]) < 0.25)
    assert 0.02 <= below <= 0.12


def test_modality_ds_learns_that_annotators_mark_audible_only_sources_visible():
    # every annotator marks "dog barking" audible AND visible; the gold says the dog is heard, never seen (off screen),
    # while "playing piano" is ticked AV and is AV. A flag-by-flag model cannot tell the two apart; the modality model
    # learns P(answer AV | truth A) from the gold clips and reads the same answer on a new clip as A.
    clips = [f"c{i}" for i in range(40)]
    annotations = [
        {"clip": c, "worker": w, "labels": [("dog barking", True, True), ("playing piano", True, True)]}
        for c in clips
        for w in ("a", "b", "c")
    ]
    votes, _ = Votes.from_records(clips, CLASSES, annotations)
    gold = {i: {0: "A", 2: "AV"} for i in range(30)}
    held = {i: {0: "A", 2: "AV"} for i in range(30, 40)}  # the truth of the other clips
    for method, dog in (("majority", "AV"), ("dawid_skene", "AV"), ("modality_ds", "A")):
        sets = merge(votes, method, gold=gold, k=3).label_sets()
        assert {c: sets[c][0] for c in held} == dict.fromkeys(held, dog), method
        assert all(sets[c][2] == "AV" for c in held), method
    card = quality_card(votes, gold, "modality_ds", k=3, em_folds=5, n_boot=100)
    assert card["micro_f1"] == 1.0 and card["modality"]["visible"]["micro_f1"] == 1.0


def test_a_gold_clip_seen_in_many_batches_is_merged_from_as_many_votes_as_a_regular_clip():
    # the gold clip was a catch trial in three batches: 9 annotators; the first three say rain, the six later ones
    # say dog (the gold). Regular clips have 3 annotators, so the fair figure merges the gold clip from 3 votes.
    annotations = [{"clip": "g", "worker": f"w{i}", "labels": [("rain", True, False)]} for i in range(3)]
    annotations += [{"clip": "g", "worker": f"w{i}", "labels": [("dog barking", True, False)]} for i in range(3, 9)]
    for c in ("r1", "r2"):
        annotations += [{"clip": c, "worker": f"w{i}", "labels": [("cat meowing", True, False)]} for i in range(3)]
    votes, _ = Votes.from_records(["g", "r1", "r2"], CLASSES, annotations)
    gold = {0: {0: "A"}}
    for method in ("weighted", "dawid_skene", "modality_ds"):
        card = quality_card(votes, gold, method, k=3, n_boot=20)
        assert card["votes_per_gold_clip"] == 3 and "first 3 annotations" in card["evaluation"]
        assert card["micro_f1"] == 0.0, method
        everything = leave_out_predictions(votes, gold, method, k=3, cap_votes=None)
        assert everything["labels"][0] == {0: MOD_A}, method


def _old_leave_one_out(votes, gold, method, k, catch, exclude_ann):
    """The card's leave-one-out for majority/weighted as it was before issue 18: every fold merged on a release-sized
    Votes (all clip indices), the usable annotations copied for the whole release."""
    from labels.core.card import _capped  # noqa: PLC0415  the private helper the old path used as well
    from labels.core.quality import catch_counts, worker_quality_from_gold  # noqa: PLC0415  reference only
    from labels.core.votes import _as_code, duplicate_votes, select_annotations  # noqa: PLC0415  reference only

    keep = ~duplicate_votes(votes) & ~exclude_ann
    eval_votes = select_annotations(votes, keep)
    n_ann = np.bincount(eval_votes.ann_clip, minlength=votes.n_clips)
    is_gold = np.zeros(votes.n_clips, dtype=bool)
    is_gold[list(gold)] = True
    cap = max(int(np.median(n_ann[(n_ann > 0) & ~is_gold])), k)
    clips = [c for c in sorted(gold) if n_ann[c] >= k]
    quality_votes = votes.subset(is_gold)
    counts = catch_counts(quality_votes, gold, catch)
    on_eval = np.zeros(votes.n_clips, dtype=bool)
    on_eval[clips] = True
    eval_gold = _capped(eval_votes.subset(on_eval), clips, cap)
    scored_here = ~np.isnan(worker_quality_from_gold(quality_votes, gold, catch_clips=catch, counts=counts))
    labels, meta = {}, {}
    for c in clips:
        held = worker_quality_from_gold(quality_votes, gold, exclude_clips=[c], catch_clips=catch, counts=counts)
        mask = np.zeros(votes.n_clips, dtype=bool)
        mask[c] = True
        res = merge(
            eval_gold.subset(mask), method, k=k, worker_quality=np.where(scored_here, held, votes.worker_quality)
        )
        labels[c] = {cl: _as_code(m) for cl, m in res.label_sets().get(c, {}).items()}
        rows = dict(zip(res.clips.tolist(), res.meta.tolist()))
        meta[c] = rows.get(c, [False] * 3)
    return labels, meta


@pytest.mark.parametrize("method", ["majority", "weighted"])
def test_leave_one_out_on_the_gold_clips_alone_equals_the_release_sized_merge(world, method):
    # issue 18: the card merges each held-out gold clip from the gold clips' annotations alone; the figures must be
    # exactly those of merging it inside the whole release (experts' annotations and repeated votes left out)
    crowd, votes, catch, _log = world
    exclude = np.random.default_rng(5).random(len(votes.ann_clip)) < 0.1
    new = leave_out_predictions(votes, crowd.gold, method, k=3, catch_clips=catch, exclude_ann=exclude)
    labels, meta = _old_leave_one_out(votes, crowd.gold, method, 3, catch, exclude)
    assert new["clips"] == sorted(labels) and len(labels) > 30
    assert new["labels"] == labels
    assert new["meta"] == meta
    assert any(labels.values())


def test_em_card_on_a_sample_equals_sampling_after_selecting_every_usable_annotation(world):
    # issue 18: the EM card copies only the sampled clips' usable annotations; the folds' merges must be exactly
    # those fitted on (all usable annotations, then the sample), as before
    from labels.core.card import _capped, _folds  # noqa: PLC0415  the private helpers the old path used as well
    from labels.core.votes import _as_code, duplicate_votes, select_annotations  # noqa: PLC0415  reference only

    crowd, votes, catch, _log = world
    gold = crowd.gold
    exclude = np.random.default_rng(6).random(len(votes.ann_clip)) < 0.1
    new = leave_out_predictions(
        votes,
        gold,
        "dawid_skene",
        k=3,
        catch_clips=catch,
        exclude_ann=exclude,
        em_folds=3,
        em_sample=100,
        params={"n_iter": 5},
    )
    eval_votes = select_annotations(votes, ~duplicate_votes(votes) & ~exclude)
    n_ann = np.bincount(eval_votes.ann_clip, minlength=votes.n_clips)
    is_gold = np.zeros(votes.n_clips, dtype=bool)
    is_gold[list(gold)] = True
    mask = is_gold.copy()
    mask[np.random.default_rng(0).choice(np.flatnonzero((n_ann > 0) & ~is_gold), 100, replace=False)] = True
    fit_votes = eval_votes.subset(mask)
    cap = new["votes_per_gold_clip"]
    labels = {}
    for fold in _folds(new["clips"], 3, 0):
        res = merge(
            _capped(fit_votes, fold, cap),
            "dawid_skene",
            gold=gold,
            k=3,
            clamp_clips=[c for c in gold if c not in fold],
            n_iter=5,
        )
        sets = res.label_sets()
        labels.update({c: {cl: _as_code(m) for cl, m in sets.get(c, {}).items()} for c in fold})
    assert len(labels) > 30 and any(labels.values())
    assert new["labels"] == labels
