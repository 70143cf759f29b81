"""The files VGGSounder publishes, read as they are: model-result pickles (``collections.defaultdict(dict)``,
protocol 4 or 5, float32 logits, numpy scalars, OrderedDict entries) and the LLM-judged prediction CSVs
(``csv/{a,v,av}/predictions-<model>.csv`` with a ``suggestions`` column). The fixtures are written in exactly
those layouts and compared with what the ``vggsounder`` package itself reads from them."""

from __future__ import annotations

import builtins
import collections
import csv
import json
import os
import pickle

import numpy as np
import pytest
from vggsounder.benchmark import load_test_predictions

from benchmark import BenchmarkInputError
from benchmark.io import (
    judged_dir_models,
    load_judged_csvs,
    load_predictions,
    load_predictions_pickle,
    predictions_dir_files,
)

INPUTS = ("a", "v", "av")


def published_scores_pickle(path, classes, n=12, protocol=4, seed=0):
    """A scored model's file as published: defaultdict(dict) of '<id>.mp4' -> predictions + float32 logits."""
    rng = np.random.default_rng(seed)
    data = collections.defaultdict(dict)
    for i in range(n):
        vid = f"clip{i:03d}_000030.mp4"
        logits = {inp: rng.standard_normal(len(classes)).astype(np.float32) for inp in INPUTS}
        data[vid]["logits"] = logits
        data[vid]["predictions"] = {inp: [classes[int(np.argmax(logits[inp]))]] for inp in INPUTS}
    with open(path, "wb") as fh:
        pickle.dump(data, fh, protocol=protocol)
    return path


def published_labels_pickle(path, classes, protocol=4):
    """A label-set model's file as published (LLMs): defaultdict(dict), lists padded with '' to 10 names,
    a misspelt name once and an unknown one twice, one entry an OrderedDict with numpy str scalars."""
    data = collections.defaultdict(dict)
    for i in range(8):
        names = [classes[i], classes[i + 10]]
        data[f"llm{i}_000010"]["predictions"] = {inp: names + [""] * (10 - len(names)) for inp in INPUTS}
    data["llm0_000010"]["predictions"]["a"][1] = "female speech, woman someone"
    data["llm3_000010"]["predictions"]["v"][0] = "wind rustiling leaves"
    data["llm4_000010"]["predictions"]["av"][0] = "wind rustiling leaves"
    data["llm5_000010"] = collections.OrderedDict(
        predictions=collections.OrderedDict((inp, [np.str_(classes[5])]) for inp in INPUTS)
    )
    with open(path, "wb") as fh:
        pickle.dump(data, fh, protocol=protocol)
    return path


def reference_matrix(path, inp, classes, column):
    """What the vggsounder package reads from ``path`` for input ``inp``: {clip id: labels or logits}."""
    df = load_test_predictions(str(path), inp)
    return dict(zip(df["id"], df[column]))


@pytest.mark.parametrize("protocol", [4, 5])
def test_published_scores_pickle_is_read_like_the_reference(protocol, classes, tmp_path):
    path = published_scores_pickle(tmp_path / "cav-mae.pkl", classes, protocol=protocol)
    raw = pickle.loads(path.read_bytes())
    assert type(raw) is collections.defaultdict  # the fixture really is the published container
    m = load_predictions(path, classes)
    assert m.name == "cav-mae" and m.kind == "scores" and m.inputs == INPUTS
    for inp in INPUTS:
        ref = reference_matrix(path, inp, classes, "logits")
        assert list(m.video_ids) == list(ref)  # '.mp4' stripped, order kept
        assert m.scores[inp].dtype == np.float32
        np.testing.assert_array_equal(m.scores[inp], np.stack([ref[v] for v in m.video_ids]))


@pytest.mark.parametrize("protocol", [4, 5])
def test_published_label_pickle_skips_unknown_names_like_the_reference(protocol, classes, tmp_path):
    path = published_labels_pickle(tmp_path / "gemini-1.5-flash.pkl", classes, protocol=protocol)
    m = load_predictions(path, classes)
    assert m.name == "gemini-1.5-flash"  # kept as given, not slugified
    assert m.kind == "labels"
    assert m.unknown_names == {"female speech, woman someone": 1, "wind rustiling leaves": 2}
    known = set(classes)
    for inp in INPUTS:
        ref = reference_matrix(path, inp, classes, "labels")
        assert list(m.video_ids) == list(ref)
        for r, vid in enumerate(m.video_ids):
            expected = {str(c) for c in ref[vid] if str(c) in known}  # the reference's binarizer drops the rest
            assert {classes[j] for j in np.flatnonzero(m.labels[inp][r])} == expected


def test_strict_refuses_the_first_unknown_name_naming_file_clip_and_where_names_come_from(classes, tmp_path):
    path = published_labels_pickle(tmp_path / "ola.pkl", classes)
    with pytest.raises(BenchmarkInputError) as err:
        load_predictions(path, classes, strict=True, classes_from="the taxonomy (manage.py load_taxonomy)")
    msg = str(err.value)
    assert msg.startswith(str(path))
    assert "clip 'llm0_000010' input 'a': unknown class name 'female speech, woman someone'" in msg
    assert "allowed: the 309 class names of the taxonomy (manage.py load_taxonomy)" in msg


class Calls:
    """A pickle that calls ``func(*args)`` when loaded."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


MARKER = "/tmp/avcrowd_bm_pwned"


@pytest.mark.parametrize(
    ("payload", "named"),
    [
        (Calls(os.system, f"touch {MARKER}"), r"(posix|os)\.system"),
        (Calls(builtins.eval, f"open({MARKER!r}, 'w')"), r"builtins\.eval"),
        (Calls(builtins.exec, f"open({MARKER!r}, 'w')"), r"builtins\.exec"),
        (Calls(builtins.getattr, "", "join"), r"builtins\.getattr"),
        (Calls(builtins.__import__, "os"), r"builtins\.__import__"),
        (Calls(collections.defaultdict, builtins.eval), r"builtins\.eval"),
    ],
)
def test_globals_that_can_run_code_are_still_refused(payload, named, classes, tmp_path):
    if os.path.exists(MARKER):
        os.unlink(MARKER)
    data = collections.defaultdict(dict)
    data["c1"]["logits"] = payload
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(data, protocol=4))
    with pytest.raises(BenchmarkInputError, match=f"pickle refused: it references the global '{named}'"):
        load_predictions(path, classes)
    assert not os.path.exists(MARKER)


def test_a_defaultdict_may_only_have_a_plain_factory(classes, tmp_path):
    path = tmp_path / "odd.pkl"
    path.write_bytes(pickle.dumps({"c1": Calls(collections.defaultdict, np.dtype)}, protocol=4))
    with pytest.raises(BenchmarkInputError, match="defaultdict with the factory 'dtype'; allowed factories: dict"):
        load_predictions(path, classes)


def test_numpy_scalars_and_ordered_dicts_in_a_published_container(classes, tmp_path):
    data = collections.defaultdict(dict)
    data["c1.mp4"] = collections.OrderedDict(logits={inp: [np.float32(i == 3) for i in range(309)] for inp in INPUTS})
    data["c2.mp4"]["logits"] = {inp: np.linspace(0, 1, 309, dtype=np.float64) for inp in INPUTS}
    path = tmp_path / "mixed.pkl"
    path.write_bytes(pickle.dumps(data, protocol=5))
    m = load_predictions(path, classes)
    assert int(np.argmax(m.scores["a"][0])) == 3 and int(np.argmax(m.scores["av"][1])) == 308


# --------------------------------------------------------------------------- judged CSVs
def write_judged(path, rows):
    """A judged CSV as the VGGSounder evaluator writes it (pandas-style quoting of the dict string)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["video_id", "suggestions", "response"])
        for vid, suggestions, response in rows:
            w.writerow([vid, suggestions if isinstance(suggestions, str) else json.dumps(suggestions), response])
    return path


def verdicts(**named):
    return {name.replace("_", " "): {"pred": pred, "score": score} for name, (pred, score) in named.items()}


@pytest.fixture
def judged_dir(tmp_path):
    root = tmp_path / "csv"
    yes, no = ("yes", 5), ("no", 0)
    write_judged(
        root / "a" / "predictions-video-llama-2-av.csv",
        [
            ("glLQrEijrKg_000300.mp4", verdicts(playing_hammond_organ=yes, male_speech__man_speaking=no), "Organ"),
            ("LDoXsip0BEQ_000177.mp4", verdicts(parrot_talking=yes, wind_rustiling_leaves=("yes", 4)), "Parrot"),
            ("notyet_000001.mp4", "[]", "Something"),
        ],
    )
    write_judged(
        root / "v" / "predictions-video-llama-2-av.csv",
        [
            ("glLQrEijrKg_000300.mp4", verdicts(playing_hammond_organ=("no", 2)), "A room"),
            ("LDoXsip0BEQ_000177.mp4", verdicts(parrot_talking=yes), "A parrot"),
            ("notyet_000001.mp4", verdicts(raining=yes), "Rain"),
        ],
    )
    write_judged(
        root / "av" / "predictions-video-llama-2-av.csv",
        [
            ("LDoXsip0BEQ_000177.mp4", verdicts(parrot_talking=yes), "Parrot talking"),
            ("glLQrEijrKg_000300.mp4", verdicts(playing_hammond_organ=yes), "Organ"),
            ("notyet_000001.mp4", verdicts(raining=yes), "Rain"),
        ],
    )
    return root


def _names(m, inp, classes):
    return [sorted(classes[j] for j in np.flatnonzero(row)) for row in m.labels[inp]]


def test_judged_csvs_become_label_set_predictions(judged_dir, classes):
    models = judged_dir_models(judged_dir)
    assert list(models) == ["video-llama-2-av"] and list(models["video-llama-2-av"]) == ["a", "v", "av"]
    m = load_judged_csvs(models["video-llama-2-av"], classes)
    assert m.name == "video-llama-2-av" and m.kind == "labels"
    # like the reference's gather_results.py: only clips judged in every input, 'yes' verdicts
    assert list(m.video_ids) == ["glLQrEijrKg_000300", "LDoXsip0BEQ_000177"] and m.not_judged == 1
    assert _names(m, "a", classes) == [["playing hammond organ"], ["parrot talking"]]
    assert _names(m, "v", classes) == [[], ["parrot talking"]]
    assert _names(m, "av", classes) == [["playing hammond organ"], ["parrot talking"]]
    assert m.unknown_names == {"wind rustiling leaves": 1}
    # the score threshold of gather_results.py --threshold
    t = load_judged_csvs(models["video-llama-2-av"], classes, threshold=2)
    assert _names(t, "v", classes)[0] == ["playing hammond organ"]


def test_a_judged_csv_alone_is_one_input_named_by_its_folder(judged_dir, classes, tmp_path):
    m = load_predictions(judged_dir / "v" / "predictions-video-llama-2-av.csv", classes)
    assert m.name == "video-llama-2-av" and m.inputs == ("v",) and len(m.video_ids) == 3
    odd = write_judged(tmp_path / "elsewhere" / "predictions-x.csv", [("c.mp4", "[]", "")])
    with pytest.raises(BenchmarkInputError, match=r"named by its folder .*allowed: a, v, av"):
        load_predictions(odd, classes)


def test_judged_csv_errors_name_file_line_and_what_is_allowed(judged_dir, classes):
    bad = write_judged(
        judged_dir / "a" / "predictions-broken.csv",
        [("ok_000001.mp4", verdicts(raining=("yes", 5)), ""), ("bad_000002.mp4", "{'raining': maybe}", "")],
    )
    with pytest.raises(BenchmarkInputError) as err:
        load_predictions(bad, classes)
    assert f"{bad}: line 3 (clip 'bad_000002'): suggestions is not a dict literal" in str(err.value)
    wrong = write_judged(
        judged_dir / "v" / "predictions-wrong.csv", [("c_000001.mp4", verdicts(raining=("ja", 5)), "")]
    )
    with pytest.raises(
        BenchmarkInputError,
        match=r"line 2 \(clip 'c_000001'\): suggestion 'raining': pred 'ja'; "
        r"allowed: 'yes', 'no'",
    ):
        load_predictions(wrong, classes)
    with pytest.raises(
        BenchmarkInputError,
        match=r"clip 'LDoXsip0BEQ_000177' input 'a': unknown class name "
        r"'wind rustiling leaves'",
    ):
        load_judged_csvs(judged_dir_models(judged_dir)["video-llama-2-av"], classes, strict=True)


def test_a_directory_of_pickles_keeps_model_names(classes, tmp_path):
    published_labels_pickle(tmp_path / "gemini-1.5-flash.pkl", classes)
    published_scores_pickle(tmp_path / "cav-mae.pkl", classes, protocol=5)
    assert [p.name for p in predictions_dir_files(tmp_path)] == ["cav-mae.pkl", "gemini-1.5-flash.pkl"]
    assert load_predictions_pickle(tmp_path / "gemini-1.5-flash.pkl", classes).name == "gemini-1.5-flash"
