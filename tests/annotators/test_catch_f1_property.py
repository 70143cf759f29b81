"""One catch-trial F1 for every path: live scoring of an assignment, scoring of imported MTurk results, and the
annotator ranking that merging uses must agree on any answers, including clips reported as not playing.

Each path is exercised through the code it runs: live scoring is `catch_result(gold, catch_answers(rows))` (what
`crowd.services.assignments.assignment_score` computes from the stored answers), imported results go through the
crowd-form answer parser first, and merging loads votes as `labels.services.load.votes_load` does (answers
reported as not playing are not votes) and ranks annotators with `labels.core.quality.worker_quality_from_gold`.
"""

from __future__ import annotations

import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from catalog.core.vocabulary import GOLD_MODALITIES, catch_answers, catch_result
from crowd.marketplace.crowdform import parse_task_answers
from labels.core.quality import worker_quality_from_gold
from labels.core.votes import Votes

CLASSES = ["dog barking", "cat meowing", "rain", "wind noise", "playing piano"]
CLIPS = ["g1", "g2", "g3", "x1", "x2"]  # g*: catch clips (gold), x*: regular clips

ticks = st.dictionaries(st.sampled_from(CLASSES), st.tuples(st.booleans(), st.booleans()), max_size=4)
gold_labels = st.dictionaries(st.sampled_from(CLASSES), st.sampled_from(GOLD_MODALITIES), max_size=3)


@st.composite
def assignment(draw):
    """Gold labels of the catch clips and one worker's stored answers: (video_id, labels, media_failed) rows; a clip
    may have no answer row at all."""
    n_gold = draw(st.integers(1, 3))
    gold = {vid: draw(gold_labels) for vid in CLIPS[:n_gold]}
    rows = []
    for vid in CLIPS[:n_gold] + CLIPS[3:]:
        if draw(st.booleans()) or vid in gold and draw(st.booleans()):
            labels = [{"name": c, "audible": a, "visible": v} for c, (a, v) in draw(ticks).items()]
            rows.append((vid, labels, draw(st.booleans())))
    return gold, rows


def merge_ranking_f1(gold: dict, rows: list) -> float | None:
    """The annotator quality merging computes for a worker with this one assignment."""
    clip_index = {c: i for i, c in enumerate(CLIPS)}
    class_index = {c: i for i, c in enumerate(CLASSES)}
    voted = [(vid, labels) for vid, labels, failed in rows if not failed]  # votes_load leaves these out
    votes, _keys = Votes.from_records(
        CLIPS,
        CLASSES,
        [{"clip": vid, "worker": "w", "group": "a1", "labels": labels} for vid, labels in voted]
        or [{"clip": "x1", "worker": "w", "group": "a1", "labels": []}],
    )
    gold_idx = {clip_index[v]: {class_index[c]: m for c, m in labels.items()} for v, labels in gold.items()}
    shown = {0: (0, [clip_index[v] for v in gold])}  # the assignment's catch clips, answered or not
    quality = worker_quality_from_gold(votes, gold_idx, catch_clips=shown)
    return None if np.isnan(quality[0]) else float(quality[0])


def imported_f1(gold: dict, rows: list) -> float | None:
    """Scoring of the same ticks arriving as an MTurk crowd-form answer (HTML mode has no 'does not play')."""
    urls = [f"https://media.example.org/{vid}.mp4" for vid in CLIPS]
    answer = {}
    for vid, labels, _failed in rows:
        flags = {}
        for lab in labels:
            flags[f"{lab['name']} audible"] = lab["audible"]
            flags[f"{lab['name']} visible"] = lab["visible"]
        answer[f"https://media.example.org/{vid}.mp4"] = flags
    parsed = parse_task_answers(json.dumps([answer]), urls, set(CLASSES))
    imported_rows = [(url.rsplit("/", 1)[1][:-4], p["labels"], False) for url, p in parsed.payloads.items()]
    result = catch_result(gold, catch_answers(r for r in imported_rows if r[0] in gold))
    return None if result is None else result[0]


@settings(max_examples=300, deadline=None)
@given(assignment())
def test_live_scoring_and_merge_ranking_agree_on_any_answers(case):
    gold, rows = case
    live = catch_result(gold, catch_answers(r for r in rows if r[0] in gold))
    live_f1 = None if live is None else live[0]
    ranked = merge_ranking_f1(gold, rows)
    if live_f1 is None:
        assert ranked is None
    else:
        assert ranked is not None and abs(ranked - live_f1) < 1e-12


@settings(max_examples=200, deadline=None)
@given(assignment())
def test_imported_results_score_like_the_same_ticks_saved_live(case):
    gold, rows = case
    ticked_rows = [(vid, labels, False) for vid, labels, _failed in rows]  # no media_failed in HTML mode
    live = catch_result(gold, catch_answers(r for r in ticked_rows if r[0] in gold))
    assert imported_f1(gold, rows) == (None if live is None else live[0])


def test_a_catch_clip_reported_as_not_playing_counts_as_nothing_ticked():
    gold = {"g1": {"dog barking": "AV"}, "g2": {"rain": "A"}}
    rows = [
        ("g1", [{"name": "dog barking", "audible": True, "visible": True}], False),
        ("g2", [{"name": "rain", "audible": True, "visible": False}], True),
    ]  # ticked, then "does not play"
    f1, precision, recall, tp, fp, fn = catch_result(gold, catch_answers(rows))
    assert (tp, fp, fn) == (2, 0, 1) and abs(f1 - 0.8) < 1e-12
    assert abs(merge_ranking_f1(gold, rows) - 0.8) < 1e-12
