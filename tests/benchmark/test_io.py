"""Reading predictions: the restricted unpickler and the validation of what it reads."""

from __future__ import annotations

import io
import json
import os
import pickle

import numpy as np
import pytest

from benchmark import BenchmarkInputError
from benchmark.io import (
    load_predictions,
    load_predictions_csv,
    load_predictions_dir,
    load_predictions_jsonl,
    load_predictions_pickle,
)


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/avcrowd_pwned",))


def dumps(obj, protocol=4):
    return io.BytesIO(pickle.dumps(obj, protocol=protocol))


def entry(classes, k=0, n=None):
    n = len(classes) if n is None else n
    return {"logits": {inp: [float(i == k) for i in range(n)] for inp in ("a", "v", "av")}}


def test_pickle_with_code_is_refused_naming_the_global(classes, tmp_path):
    payload = {"clip": {"predictions": {"a": ["raining"]}, "x": Evil()}}
    with pytest.raises(BenchmarkInputError, match=r"global '(posix|os)\.system'"):
        load_predictions_pickle(dumps(payload), classes, name="m")
    assert not os.path.exists("/tmp/avcrowd_pwned")


@pytest.mark.parametrize("obj", [pickle.loads, set(), complex(1, 2)])
def test_pickle_with_other_objects_is_refused(obj, classes):
    with pytest.raises(BenchmarkInputError, match="pickle refused|must be a dict"):
        load_predictions_pickle(dumps({"clip": {"logits": obj}}), classes, name="m")


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_numpy_arrays_and_plain_data_are_accepted(protocol, classes):
    data = {
        "c1.mp4": {"logits": {inp: np.arange(len(classes), dtype=np.float32) for inp in ("a", "v", "av")}},
        "c2": {"logits": {inp: np.zeros(len(classes), dtype=np.float32) for inp in ("a", "v", "av")}},
    }
    m = load_predictions_pickle(dumps(data, protocol), classes, name="m")
    assert m.kind == "scores"
    assert list(m.video_ids) == ["c1", "c2"]  # ".mp4" stripped like the reference
    assert m.scores["av"].dtype == np.float32 and m.scores["av"].shape == (2, len(classes))
    assert m.scores["a"][0, -1] == len(classes) - 1


def test_wrong_number_of_score_columns(classes):
    with pytest.raises(BenchmarkInputError, match=r"308 score columns, expected 309"):
        load_predictions_pickle(dumps({"c1": entry(classes, n=308)}), classes, name="m")


def test_unknown_class_names_are_skipped_and_counted_or_refused_with_strict(classes):
    data = {"c1": {"predictions": {"a": ["raining", "dog barkng"], "v": ["unicorn"], "av": ["unicorn", ""]}}}
    m = load_predictions_pickle(dumps(data), classes, name="m")
    assert m.unknown_names == {"dog barkng": 1, "unicorn": 2}  # the blank padding is no class name
    assert m.labels["a"][0].sum() == 1 and m.labels["a"][0, classes.index("raining")]
    assert not m.labels["v"].any() and not m.labels["av"].any()
    with pytest.raises(BenchmarkInputError) as err:
        load_predictions_pickle(dumps(data), classes, name="m", strict=True, classes_from="the taxonomy")
    msg = str(err.value)
    assert "clip 'c1' input 'a': unknown class name 'dog barkng'" in msg
    assert "allowed: the 309 class names of the taxonomy" in msg


def test_empty_prediction_set_is_refused(classes, tmp_path):
    with pytest.raises(BenchmarkInputError, match="empty prediction set"):
        load_predictions_pickle(dumps({}), classes, name="m")
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    with pytest.raises(BenchmarkInputError, match="empty prediction set"):
        load_predictions(path, classes)


def test_scores_for_some_clips_only_are_refused(classes):
    data = {"c1": entry(classes), "c2": {"predictions": {"a": ["raining"]}}}
    with pytest.raises(BenchmarkInputError, match="1 of 2 clips have 'logits'"):
        load_predictions_pickle(dumps(data), classes, name="m")


def test_non_finite_scores_are_refused(classes):
    e = entry(classes)
    e["logits"]["v"][3] = float("nan")
    with pytest.raises(BenchmarkInputError, match=r"scores\['v'\] hold NaN"):
        load_predictions_pickle(dumps({"c1": e}), classes, name="m")


def test_truncated_pickle_is_refused(classes):
    raw = pickle.dumps({"c1": entry(classes)})[:100]
    with pytest.raises(BenchmarkInputError, match="not a readable pickle"):
        load_predictions_pickle(io.BytesIO(raw), classes, name="m")


def test_csv_and_jsonl_label_lists(classes, tmp_path):
    csv_path = tmp_path / "gemini.csv"
    csv_path.write_text('video_id,input,label\nc1,a,raining\nc1,a,"bird chirping, tweeting"\nc1,v,\nc2,AV,raining\n')
    m = load_predictions(csv_path, classes)
    assert m.name == "gemini" and m.kind == "labels"
    a = m.labels["a"]
    assert a[0, classes.index("raining")] and a[0, classes.index("bird chirping, tweeting")] and a.sum() == 2
    assert not m.labels["v"].any() and m.labels["av"][1, classes.index("raining")]

    jl = tmp_path / "llm.jsonl"
    jl.write_text(json.dumps({"video_id": "c1", "predictions": {"a": ["raining"], "v": [], "av": ["raining"]}}) + "\n")
    assert load_predictions_jsonl(jl, classes).labels["av"].sum() == 1

    bad = tmp_path / "bad.csv"
    bad.write_text("video_id,input,label\nc1,audio,raining\n")
    with pytest.raises(BenchmarkInputError, match="line 2: input 'audio' is not one of a, v, av"):
        load_predictions_csv(bad, classes)
    with pytest.raises(BenchmarkInputError, match="unsupported predictions file type .txt"):
        load_predictions(tmp_path / "x.txt", classes)


def test_directory_loads_one_model_per_file(classes, tmp_path):
    for name in ("b", "a"):
        with open(tmp_path / f"{name}.pkl", "wb") as fh:
            pickle.dump({"c1": entry(classes)}, fh)
    assert [m.name for m in load_predictions_dir(tmp_path, classes)] == ["a", "b"]
    with pytest.raises(BenchmarkInputError, match="no predictions files"):
        (tmp_path / "empty").mkdir()
        load_predictions_dir(tmp_path / "empty", classes)


def _scores_mapping(classes, n=80, seed=0):
    rng = np.random.default_rng(seed)
    return {
        f"clip{i:03d}": {
            "logits": {inp: rng.normal(size=len(classes)).tolist() for inp in ("a", "v", "av")},
            "predictions": {"a": ["raining"]},
        }
        for i in range(n)
    }


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_fast_score_decoding_equals_plain_unpickling(protocol, classes):
    data = _scores_mapping(classes)
    # a clip id that contains the byte pattern of a float list must not confuse the fast path
    data["](G" + "x" * 5] = data.pop("clip000")
    m = load_predictions_pickle(dumps(data, protocol), classes, name="m")
    for inp in ("a", "v", "av"):
        want = np.array([data[v]["logits"][inp] for v in m.video_ids])
        assert m.scores[inp].dtype == np.float64 and np.array_equal(m.scores[inp], want)


def test_fast_path_falls_back_when_placeholders_do_not_add_up(classes):
    from benchmark.fastpickle import FastPathUnavailable, extract_float_lists, substitute_rows

    data = _scores_mapping(classes)
    data["extra"] = {"logits": {inp: [0.5] * len(classes) for inp in ("a", "v", "av")}, "note": [1.0] * len(classes)}
    raw = pickle.dumps(data, protocol=4)
    small, values = extract_float_lists(raw, len(classes))
    # every float list of 309 values is decoded, except the few that straddle a pickle frame boundary
    assert 200 < values.shape[0] <= 80 * 3 + 3 + 1 and values.shape[1] == len(classes)
    assert len(small) < len(raw) / 5
    with pytest.raises(FastPathUnavailable):  # the list under "note" is not a score list
        substitute_rows(pickle.loads(small), values)
    m = load_predictions_pickle(io.BytesIO(raw), classes, name="m")  # read the slow way instead
    assert m.scores["a"].shape == (81, len(classes))


def test_label_list_dialects_read_by_the_one_reader(classes, tmp_path):
    aliases = {"audio": "a", "visual": "v", "a": "a", "v": "v", "av": "av"}
    csv_path = tmp_path / "m.csv"
    csv_path.write_text("video_id,modality,label\nc1,audio,raining\nc1,visual,\n")
    with pytest.raises(BenchmarkInputError, match="line 2: input 'audio' is not one of a, v, av"):
        load_predictions_csv(csv_path, classes)
    m = load_predictions_csv(csv_path, classes, inputs=aliases)
    assert m.labels["a"][0, classes.index("raining")] and not m.labels["v"].any()
    csv_path.write_text("video_id,input,label\nc1,a,raining,x\n")
    with pytest.raises(BenchmarkInputError, match="more fields than the header video_id,input,label"):
        load_predictions_csv(csv_path, classes)
    csv_path.write_text("video_id,input,label\n ,a,raining\n")
    with pytest.raises(BenchmarkInputError, match="line 2: empty video_id"):
        load_predictions_csv(csv_path, classes)

    jl = tmp_path / "m.jsonl"
    jl.write_text(json.dumps({"video_id": "c1", "a": ["raining"], "logits": {"av": [0.0] * len(classes)}}) + "\n")
    assert load_predictions_jsonl(jl, classes).labels == {}  # scored: label sets dropped like the reference
    kept = load_predictions_jsonl(jl, classes, keep_label_sets=True)
    assert kept.kind == "scores" and kept.labels["a"][0, classes.index("raining")]
    jl.write_text(json.dumps({"video_id": "c1", "audio": ["raining"]}) + "\n")
    with pytest.raises(BenchmarkInputError, match=r"m.jsonl: clip 'c1': unknown input 'audio'; allowed: a, v, av"):
        load_predictions_jsonl(jl, classes)
    assert load_predictions_jsonl(jl, classes, inputs=aliases).labels["a"].sum() == 1


def test_pickle_files_are_read_without_their_framing_and_bad_framing_is_left_alone(classes, tmp_path):
    from benchmark.fastpickle import FRAME, read_unframed

    data = _scores_mapping(classes)
    framed = pickle.dumps(data, protocol=4)
    assert framed[2] == FRAME and framed.count(bytes([FRAME])) > 3
    path = tmp_path / "m.pkl"
    path.write_bytes(framed)
    unframed = read_unframed(path)
    assert unframed[2] != FRAME and len(unframed) < len(framed)
    assert pickle.loads(unframed) == data  # the same pickle, only without the optional frames
    m = load_predictions_pickle(path, classes, name="m")
    for inp in ("a", "v", "av"):
        want = np.array([data[v]["logits"][inp] for v in m.video_ids])
        assert np.array_equal(m.scores[inp], want)
    path.write_bytes(framed[:-5])  # truncated: the framing does not add up
    assert read_unframed(path) == framed[:-5]
    path.write_bytes(pickle.dumps(data, protocol=2))  # not framed at all
    assert read_unframed(path) == pickle.dumps(data, protocol=2)
