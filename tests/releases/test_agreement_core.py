"""Krippendorff's alpha on hand-computed cases."""

import math

import numpy as np
import pytest

from labels.core.agreement import agreement, alpha_binary
from labels.core.votes import Votes


def test_alpha_matches_krippendorff_binary_two_coder_example():
    # Krippendorff, "Computing Krippendorff's Alpha-Reliability": two observers, ten units.
    obs1 = [0, 1, 0, 0, 0, 0, 0, 0, 1, 0]
    obs2 = [1, 1, 1, 0, 0, 1, 0, 0, 0, 0]
    yes = [a + b for a, b in zip(obs1, obs2)]
    # N=20, 6 yes / 14 no, 4 disagreeing units -> 1 - 19*4/(6*14)
    assert alpha_binary(yes, [2] * 10) == pytest.approx(1 - 19 * 4 / 84)
    assert alpha_binary(yes, [2] * 10) == pytest.approx(0.095, abs=5e-4)


def test_alpha_perfect_agreement_is_one_and_constant_data_undefined():
    assert alpha_binary([3, 0, 3, 0], [3, 3, 3, 3]) == pytest.approx(1.0)
    assert math.isnan(alpha_binary([0, 0], [3, 3]))
    assert math.isnan(alpha_binary([1], [1]))  # no pairable unit


def test_agreement_over_votes_units_and_per_class():
    classes = ["rain", "dog barking"]
    annotations = [
        {"clip": "a", "worker": 1, "labels": [("rain", True, False)], "meta": (True, False, False)},
        {"clip": "a", "worker": 2, "labels": [("rain", True, True)], "meta": (True, False, False)},
        {"clip": "b", "worker": 1, "labels": [("dog barking", True, False)], "meta": (False, False, False)},
        {"clip": "b", "worker": 2, "labels": [], "meta": (False, False, False)},
        {"clip": "c", "worker": 1, "labels": [("rain", True, False)], "meta": (True, True, False)},  # single
    ]
    votes, _ = Votes.from_records(["a", "b", "c"], classes, annotations)
    out = agreement(votes, class_names=classes)
    # audible units (pairable): (a, rain) yes/yes, (b, dog) yes/no -> N=4, 3 yes 1 no, 1 disagreement
    assert out["audible"] == pytest.approx(1 - 3 * 1 / 3, abs=1e-6)
    # visible: (a, rain) no/yes, (b, dog) no/no -> 1 yes 3 no -> 1 - 3*1/3 = 0
    assert out["visible"] == pytest.approx(0.0, abs=1e-6)
    # background music: a yes/yes, b no/no -> perfect
    assert out["background_music"] == pytest.approx(1.0)
    assert out["voice_over"] is None  # all "no" among pairable units: undefined
    assert out["per_class"]["rain"]["units"] == 1 and out["per_class"]["dog barking"]["units"] == 1
    assert out["per_class"]["rain"]["audible"] is None  # one unit, all yes


def test_alpha_by_unit_size_sums_matches_the_per_unit_formula():
    """alpha is computed from per-size sums (150k clips: 4.6 M units); it equals the textbook per-unit sum, also per
    group, with unpairable units (n < 2) and sizes up to a gold clip's many annotators."""
    from labels.core.agreement import _alpha_grouped

    rng = np.random.default_rng(7)
    n = rng.choice([0, 1, 2, 3, 3, 3, 5, 40], 3000)
    yes = np.minimum(rng.binomial(n, 0.3), n)
    group = rng.integers(0, 6, 3000)

    def direct(yes, n):
        ok = n >= 2
        yes, n = yes[ok].astype(float), n[ok].astype(float)
        no = n - yes
        return 1 - (n.sum() - 1) * (yes * no / (n - 1)).sum() / (yes.sum() * no.sum())

    assert alpha_binary(yes, n) == pytest.approx(direct(yes, n), abs=1e-12)
    alpha, units = _alpha_grouped(group, yes, n, 7)
    for g in range(6):
        assert alpha[g] == pytest.approx(direct(yes[group == g], n[group == g]), abs=1e-12)
        assert units[g] == ((group == g) & (n >= 2)).sum()
    assert np.isnan(alpha[6]) and units[6] == 0
