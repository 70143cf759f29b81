"""Prediction store, import, proposal sets and evaluation against the database."""

import io
import json
import os
import pickle

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from catalog.models import Clip, GoldLabel, TaxonomyClass
from proposals.models import ModelRun, Proposal, ProposalSet
from proposals.selectors import run_label_sets, run_scores
from proposals.services import ProposalsError, run_import

VIDS = ["vid_a", "vid_b", "vid_c", "vid_d"]


@pytest.fixture
def clips(dataset, taxonomy):
    out = []
    for i, v in enumerate(VIDS):
        c = Clip.objects.create(dataset=dataset, video_id=v, is_gold=i < 2)
        c.original_labels.add(TaxonomyClass.objects.get(index=10 + i))
        out.append(c)
    return out


def _pickle(tmp_path, taxonomy, n_models=1, seed=0, name="m"):
    rng = np.random.default_rng(seed)
    data = {}
    for i, v in enumerate(VIDS):
        logits = {m: rng.standard_normal(309).astype(np.float32) for m in ("a", "v", "av")}
        logits["av"][100 + i] = 50  # a clear audio-visual winner per clip
        data[v] = {
            "predictions": {m: [taxonomy[int(np.argmax(logits[m]))]] for m in logits},
            "logits": {m: logits[m].tolist() for m in logits},
        }
    p = tmp_path / f"{name}.pkl"
    p.write_bytes(pickle.dumps(data))
    return p, data


def test_import_vggsounder_pickle_round_trips_scores_and_labels(dataset, clips, taxonomy, tmp_path):
    path, data = _pickle(tmp_path, taxonomy)
    out = io.StringIO()
    call_command("import_predictions", str(path), "--dataset", dataset.name, "--name", "cavmae", stdout=out)
    assert "imported 4 clips of 'cavmae'" in out.getvalue()
    run = ModelRun.objects.get(dataset=dataset, external_name="cavmae")
    assert run.status == "done" and run.kind == "scores" and run.modalities == ["a", "v", "av"]
    vids, scores = run_scores(run)
    assert vids == VIDS
    assert scores["av"].dtype == np.float32 and scores["av"].shape == (4, 309)
    np.testing.assert_allclose(scores["a"][2], np.asarray(data["vid_c"]["logits"]["a"], dtype=np.float32))
    sets = run_label_sets(run)
    assert sets["vid_b"]["av"] == [taxonomy[101]]
    assert sets["vid_a"]["v"] == data["vid_a"]["predictions"]["v"]
    # importing the same name again replaces the run instead of adding one
    call_command("import_predictions", str(path), "--dataset", dataset.name, "--name", "cavmae", stdout=io.StringIO())
    assert ModelRun.objects.filter(dataset=dataset).count() == 1


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pickle_with_code_is_refused_and_nothing_stored(dataset, clips, tmp_path):
    p = tmp_path / "evil.pkl"
    p.write_bytes(pickle.dumps({"vid_a": {"predictions": {"a": [_Evil()]}}}))
    with pytest.raises(CommandError, match=r"(?i)refus|not allowed|forbidden"):
        call_command("import_predictions", str(p), "--dataset", dataset.name)
    assert not ModelRun.objects.exists()


def test_wrong_shapes_unknown_classes_and_unknown_clips_are_named(dataset, clips, taxonomy, tmp_path):
    bad = tmp_path / "short.pkl"
    bad.write_bytes(pickle.dumps({"vid_a": {"predictions": {"a": []}, "logits": {"a": [0.0] * 308}}}))
    with pytest.raises(
        ProposalsError, match=r"short.pkl: .*'vid_a'.*(308 score columns, expected 309|expected \(309,\))"
    ):
        run_import(dataset, "short", str(bad))
    csv = tmp_path / "gemini.csv"
    csv.write_text("video_id,input,label\nvid_a,av,dog barking\nvid_b,av,space ship\nvid_b,a,space ship\n")
    with pytest.raises(ProposalsError, match=r"clip 'vid_b' input 'a': unknown class name 'space ship'"):
        run_import(dataset, "gemini", str(csv), strict=True)
    csv.write_text("video_id,input,label\nvid_a,smell,dog barking\n")
    with pytest.raises(ProposalsError, match=r"line 2, field input: unknown input modality 'smell'; allowed: a, v, av"):
        run_import(dataset, "gemini", str(csv))
    csv.write_text("video_id,label\nvid_a,dog barking\n")
    with pytest.raises(ProposalsError, match=r"missing column\(s\) \['input'\]"):
        run_import(dataset, "gemini", str(csv))
    csv.write_text("video_id,input,label\nnot_a_clip,av,dog barking\n")
    with pytest.raises(ProposalsError, match=r"1 clip id\(s\) are not in dataset demo-props, e.g. \['not_a_clip'\]"):
        run_import(dataset, "gemini", str(csv))
    assert not ModelRun.objects.exists()


def test_label_lists_from_csv_and_jsonl(dataset, clips, tmp_path):
    csv = tmp_path / "gemini.csv"
    csv.write_text(
        'video_id,input,label\nvid_a,av,dog barking\nvid_a,av,"male speech, man speaking"\nvid_b,a,dog barking\n'
    )
    run = run_import(dataset, "gemini", str(csv))
    assert run.kind == "labels"
    sets = run_label_sets(run)
    assert sorted(sets["vid_a"]["av"]) == ["dog barking", "male speech, man speaking"]
    assert sets["vid_b"]["a"] == ["dog barking"]
    assert run_scores(run) == (["vid_a", "vid_b"], {})
    jl = tmp_path / "llm.jsonl"
    jl.write_text(
        json.dumps({"video_id": "vid_c", "a": ["sea waves"], "v": []})
        + "\n"
        + json.dumps({"video_id": "vid_d", "predictions": {"av": ["wind noise"]}})
        + "\n"
    )
    run = run_import(dataset, "llm", str(jl))
    assert run_label_sets(run)["vid_d"]["av"] == ["wind noise"]
    jl.write_text('{"video_id": "vid_c", "a": ["sea waves"]}\n{oops\n')
    with pytest.raises(ProposalsError, match="line 2: not valid JSON"):
        run_import(dataset, "llm", str(jl))


def test_make_and_evaluate_proposals(dataset, clips, taxonomy, tmp_path):
    p1, _ = _pickle(tmp_path, taxonomy, seed=1, name="m1")
    p2, _ = _pickle(tmp_path, taxonomy, seed=2, name="m2")
    call_command("import_predictions", str(p1), str(p2), "--dataset", dataset.name, stdout=io.StringIO())
    # gold: vid_a has its av winner (class 100) and its original label (10) audible, and an absent class
    for vid, idx, mod in [("vid_a", 100, "AV"), ("vid_a", 10, "A"), ("vid_a", 200, "-"), ("vid_b", 250, "V")]:
        GoldLabel.objects.create(
            clip=Clip.objects.get(video_id=vid), cls=TaxonomyClass.objects.get(index=idx), modality=mod
        )
    out = io.StringIO()
    call_command("make_proposals", "--dataset", dataset.name, stdout=out)
    pset = ProposalSet.objects.get(dataset=dataset, active=True)
    assert "(active)" in out.getvalue()
    names_a = set(
        Proposal.objects.filter(proposal_set=pset, clip__video_id="vid_a").values_list("cls__name", flat=True)
    )
    assert {taxonomy[10], taxonomy[100], "wind noise", "sea waves", "cricket chirping"} <= names_a
    prop = Proposal.objects.get(proposal_set=pset, clip__video_id="vid_a", cls__index=100)
    rules = {(p["rule"], p["model"], p["modality"]) for p in prop.provenance}
    assert ("topk", "m1", "av") in rules and ("topk", "m2", "av") in rules and ("consensus", "m1", "av") in rules
    # recall: 2 of the 3 present gold labels (class 250 on vid_b is not proposed unless a model ranks it)
    ev = pset.evaluation
    assert ev["n_gold_labels"] == 3
    expected = (2 + (Proposal.objects.filter(proposal_set=pset, clip__video_id="vid_b", cls__index=250).exists())) / 3
    assert ev["recall"] == pytest.approx(expected)
    assert pset.n_proposals == Proposal.objects.filter(proposal_set=pset).count()
    assert pset.strategy["consensus"]["global_n"] == 60000
    # a second set with a smaller strategy replaces the active one
    call_command(
        "make_proposals",
        "--dataset",
        dataset.name,
        "--strategy",
        '{"common_classes": [], "topk": {"a": 1, "v": 0, "av": 1}, "consensus": {"global_n": 0}}',
        stdout=io.StringIO(),
    )
    assert ProposalSet.objects.filter(dataset=dataset, active=True).count() == 1
    new = ProposalSet.objects.get(dataset=dataset, active=True)
    assert new.pk != pset.pk and new.n_proposals < pset.n_proposals
    out = io.StringIO()
    call_command("evaluate_proposals", "--dataset", dataset.name, "--tune", "--trials", "10", stdout=out)
    text = out.getvalue()
    assert "recall per rule" in text and "Pareto front" in text and "smallest lists that" in text
    with pytest.raises(CommandError, match=r"unknown strategy key\(s\) \['pool'\]"):
        call_command("make_proposals", "--dataset", dataset.name, "--strategy", '{"pool": 1}')
    with pytest.raises(CommandError, match="unknown dataset 'nope'"):
        call_command("evaluate_proposals", "--dataset", "nope")


def test_evaluate_without_runs_or_gold_says_why(dataset, clips, taxonomy, tmp_path):
    with pytest.raises(CommandError, match="no finished model runs"):
        call_command("evaluate_proposals", "--dataset", dataset.name)
    p1, _ = _pickle(tmp_path, taxonomy)
    run_import(dataset, "m", str(p1))
    with pytest.raises(CommandError, match="no gold labels"):
        call_command("evaluate_proposals", "--dataset", dataset.name)


def test_model_names_are_kept_as_given(dataset, clips, taxonomy, tmp_path):
    """Published names carry dots (gemini-1.5-flash): not slugified to gemini-15-flash."""
    p, _ = _pickle(tmp_path, taxonomy, name="gemini-1.5-flash")
    call_command("import_predictions", str(p), "--dataset", dataset.name, stdout=io.StringIO())
    assert ModelRun.objects.filter(dataset=dataset, external_name="gemini-1.5-flash").exists()
    call_command(
        "import_predictions", str(p), "--dataset", dataset.name, "--name", "qwen2.5-omni_7B", stdout=io.StringIO()
    )
    assert ModelRun.objects.filter(external_name="qwen2.5-omni_7B").exists()
    with pytest.raises(CommandError, match=r"model name 'bad name/x'.*letters, digits"):
        call_command("import_predictions", str(p), "--dataset", dataset.name, "--name", "bad name/x")
    with pytest.raises(ProposalsError, match="not allowed"):
        run_import(dataset, ".hidden", str(p))
    assert ModelRun.objects.count() == 2
