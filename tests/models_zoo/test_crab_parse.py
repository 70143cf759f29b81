"""Parser of Crab's tagged output and the nearest-class mapping."""

from __future__ import annotations

import numpy as np
import pytest

from models_zoo.crab_parse import ClassMatcher, extract_spans, parse_events
from models_zoo.text_embed import default_class_names

CLASSES = default_class_names()


def ev(text):
    return [(e.modality, e.name, e.spans) for e in parse_events(text, CLASSES)]


def test_audio_and_visual_tags_with_time_ranges():
    out = ev(
        "<audio_event>dog barking (0-4s), car horn [5.5, 7]</audio_event>"
        "<visual_event>dog: from 0 to 10 seconds; a man speaking</visual_event>"
    )
    assert out == [
        ("a", "dog barking", [(0.0, 4.0)]),
        ("a", "car horn", [(5.5, 7.0)]),
        ("v", "dog", [(0.0, 10.0)]),
        ("v", "man speaking", []),
    ]


def test_class_names_with_commas_stay_whole():
    out = ev("<audio_event>bird chirping, tweeting (0-10s), male speech, man speaking, wind noise</audio_event>")
    assert [n for _, n, _ in out] == ["bird chirping, tweeting", "male speech, man speaking", "wind noise"]
    assert out[0][2] == [(0.0, 10.0)]


def test_event_and_range_tags_and_several_ranges():
    assert ev("<event>dog barking</event>, <range>0,3</range>; <event>cat meowing</event><range>4,5</range>") == [
        ("av", "dog barking", [(0.0, 3.0)]),
        ("av", "cat meowing", [(4.0, 5.0)]),
    ]
    assert ev("<audio_event>dog barking 0s-3s, 5-7s</audio_event>") == [("a", "dog barking", [(0.0, 3.0), (5.0, 7.0)])]
    assert extract_spans("siren (7 - 2 s)")[1] == [(2.0, 7.0)]  # reversed range is ordered


def test_crab_avvp_answer_format():
    # the authors' AVVP targets: tagged events, each followed by "(start end)" ranges
    text = (
        "The chainsaw is visible at times and runs throughout. Therefore, visual and audio events are: "
        "<visual_event>Chainsaw,(0 1),(3 6),(9 10)</visual_event> and <audio_event>Chainsaw,(0 10)</audio_event>"
    )
    out = [e for e in ev(text) if e[0]]
    assert out == [("v", "Chainsaw", [(0.0, 1.0), (3.0, 6.0), (9.0, 10.0)]), ("a", "Chainsaw", [(0.0, 10.0)])]


def test_unclosed_tags_case_and_untagged_text():
    out = ev("<AUDIO_EVENT>Dog Barking\n<visual_event>playing piano")
    assert out == [("a", "Dog Barking", []), ("v", "playing piano", [])]
    assert ev("There is cattle mooing and a baby crying.") == [("", "cattle mooing", []), ("", "baby crying", [])]
    assert ev("") == [] and ev("<audio_event></audio_event>") == []


def test_audio_visual_tag_variants():
    for tag in ("av_event", "audio_visual_event", "audiovisual_event"):
        assert ev(f"<{tag}>lions roaring</{tag}>") == [("av", "lions roaring", [])]


@pytest.fixture(scope="module")
def matcher(tmp_path_factory):
    pytest.importorskip("wordllama")
    return ClassMatcher(CLASSES, backend="wordllama", threshold=0.6, cache_dir=tmp_path_factory.mktemp("c"))


def test_nearest_class_match_with_threshold(matcher):
    ms = matcher.match(
        "<audio_event>a dog barks loudly (0-4s), car horn honking, quantum chromodynamics"
        "</audio_event><visual_event>Dog Barking</visual_event>"
    )
    got = [(m.modality, m.cls, m.spans) for m in ms]
    assert got[0] == ("a", "dog barking", [(0.0, 4.0)])
    assert got[1][1] == "vehicle horn, car horn, honking"
    assert got[2][1] is None  # below threshold: not mapped to any class
    assert ms[3].cls == "dog barking" and ms[3].similarity == 1.0  # exact spelling


def test_scores_vector_respects_modality_filter(matcher):
    text = "<audio_event>dog barking</audio_event><visual_event>playing piano</visual_event>"
    a = matcher.scores(text, ("a",))
    both = matcher.scores(text, ("a", "v", "av"))
    i, j = CLASSES.index("dog barking"), CLASSES.index("playing piano")
    assert a.dtype == np.float32 and a.shape == (309,)
    assert a[i] == 1.0 and a[j] == 0.0 and np.count_nonzero(a) == 1
    assert both[i] == 1.0 and both[j] == 1.0


def test_threshold_is_configurable(tmp_path):
    strict = ClassMatcher(CLASSES, backend="hash", threshold=0.99, cache_dir=tmp_path)
    loose = ClassMatcher(CLASSES, backend="hash", threshold=0.3, cache_dir=tmp_path)
    text = "<audio_event>dog barkin</audio_event>"
    assert strict.match(text)[0].cls is None
    assert loose.match(text)[0].cls == "dog barking"
