"""Catch-trial scoring on hand-computed cases (pure, no database)."""

import pytest

from catalog.core.vocabulary import catch_scores
from crowd.core.scoring import decide, should_block


def test_perfect_answers_score_one():
    gold = {"c1": {"dog barking": "AV", "wind noise": "A"}}
    answers = {"c1": {"dog barking": (True, True), "wind noise": (True, False)}}
    assert catch_scores(gold, answers) == (1.0, 1.0, 1.0, 3, 0, 0)


def test_hand_computed_mixed_case_pooled_over_two_catch_clips():
    # gold atoms: c1 dog/a, dog/v, wind/a ; c2 car/v  -> 4 atoms
    gold = {"c1": {"dog barking": "AV", "wind noise": "A", "cat meowing": "-"}, "c2": {"car passing by": "V"}}
    # worker atoms: c1 dog/a (TP), cat/a (FP), wind/v (FP) ; c2 car/v (TP), car/a (FP)
    answers = {
        "c1": {"dog barking": (True, False), "cat meowing": (True, False), "wind noise": (False, True)},
        "c2": {"car passing by": (True, True)},
    }
    f1, p, r, tp, fp, fn = catch_scores(gold, answers)
    assert (tp, fp, fn) == (2, 3, 2)  # FN: dog/v, wind/a
    assert p == pytest.approx(2 / 5)
    assert r == pytest.approx(2 / 4)
    assert f1 == pytest.approx(4 / 9)  # 2TP / (2TP + FP + FN) = 4 / (4 + 3 + 2)


def test_untouched_catch_clip_counts_as_false_negatives():
    gold = {"c1": {"dog barking": "A"}, "c2": {"sea waves": "AV"}}
    answers = {"c1": {"dog barking": (True, False)}}  # c2 never answered
    f1, p, r, tp, fp, fn = catch_scores(gold, answers)
    assert (tp, fp, fn) == (1, 0, 2)
    assert p == 1.0 and r == pytest.approx(1 / 3) and f1 == pytest.approx(2 / 4)


def test_answers_on_non_catch_clips_are_ignored():
    gold = {"c1": {"dog barking": "V"}}
    answers = {"c1": {"dog barking": (False, True)}, "regular": {"cat meowing": (True, True)}}
    assert catch_scores(gold, answers)[:3] == (1.0, 1.0, 1.0)


def test_zero_denominators_give_zero_not_error():
    # nothing ticked, gold only absent labels: every denominator is 0
    assert catch_scores({"c1": {"dog barking": "-"}}, {}) == (0.0, 0.0, 0.0, 0, 0, 0)
    # ticks but no gold atoms: precision 0 (TP 0), recall 0 (denominator 0)
    f1, p, r, tp, fp, fn = catch_scores({"c1": {"dog barking": "-"}}, {"c1": {"dog barking": (True, False)}})
    assert (f1, p, r, tp, fp, fn) == (0.0, 0.0, 0.0, 0, 1, 0)


def test_unknown_gold_modality_is_refused():
    with pytest.raises(ValueError, match="allowed: A, V, AV, -"):
        catch_scores({"c1": {"dog barking": "X"}}, {})


def test_policy_rejects_below_threshold_and_explains():
    d = decide(0.2, reject_below=0.25)
    assert d.status == "rejected" and "20%" in d.feedback and "25%" in d.feedback
    assert decide(0.25, reject_below=0.25).status == "approved"
    assert decide(0.9, reject_below=0.25, review_window_hours=24).status == "submitted"
    assert decide(None, reject_below=0.25).status == "approved"


def test_block_only_after_enough_scored_assignments():
    assert not should_block(0.1, 4, block_floor=0.25, block_after=5)
    assert should_block(0.1, 5, block_floor=0.25, block_after=5)
    assert not should_block(0.3, 10, block_floor=0.25, block_after=5)
    assert not should_block(None, 10, block_floor=0.25, block_after=5)
