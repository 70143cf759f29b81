"""The product's report path (`report_build`, used by the command, the API and the pages) reads prediction files
one after another while it evaluates, and gives exactly the numbers of the library computed on all models at once."""

from __future__ import annotations

import gc
import json
import pickle
import weakref

import numpy as np
import pandas as pd
import pytest

import benchmark.io as bio
from benchmark import LabelSet, default_class_names, evaluate, meta_breakdown, metric_table
from benchmark.labels import default_labels_csv
from benchmark.report import _jsonable, write_report
from benchmark.synthetic import synthetic_predictions
from reports.services import report_build

pytestmark = pytest.mark.django_db

NAMES = ("alpha", "beta", "gamma")


@pytest.fixture(scope="module")
def three_models(tmp_path_factory):
    """A 150-clip slice of the published labels and 3 models' pickles (two with scores, one with label sets)."""
    d = tmp_path_factory.mktemp("stream_inputs")
    df = pd.read_csv(default_labels_csv(), dtype=str, keep_default_na=False)
    ids = df.video_id.drop_duplicates().iloc[7::100][:150]
    labels_csv = d / "labels.csv"
    df[df.video_id.isin(set(ids))].to_csv(labels_csv, index=False)
    classes = default_class_names()
    labels = LabelSet.from_csv(labels_csv, classes)
    preds = d / "preds"
    preds.mkdir()
    for i, (name, kind) in enumerate(zip(NAMES, ("scores", "labels", "scores"))):
        with open(preds / f"{name}.pkl", "wb") as fh:
            pickle.dump(synthetic_predictions(labels, seed=40 + i, kind=kind, skill=3), fh)
    models = [bio.load_predictions(preds / f"{n}.pkl", classes) for n in NAMES]
    return {"labels_csv": labels_csv, "preds": preds, "labels": labels, "classes": classes, "models": models}


@pytest.fixture
def loads(monkeypatch):
    """Records, each time a predictions file has been read, how many models read so far are still alive."""
    alive, seen = [], []
    real = bio.load_predictions

    def counting(*args, **kwargs):
        model = real(*args, **kwargs)
        gc.collect()
        alive.append(sum(r() is not None for r in seen) + 1)
        seen.append(weakref.ref(model))
        return model

    monkeypatch.setattr(bio, "load_predictions", counting)
    return alive


@pytest.mark.parametrize("regime", ["default", "all"])
def test_report_build_streams_files_and_matches_the_library(three_models, loads, tmp_path, regime):
    inp = three_models
    out = tmp_path / "out"
    rep = report_build(str(inp["labels_csv"]), [str(inp["preds"])], out, regime=regime, figures=False)

    # every file was read, and never more than two of them were held at once (the old path held all three)
    assert len(loads) == 3 and max(loads) <= 2, loads

    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk == json.loads(json.dumps(rep))
    want = evaluate(inp["labels"], inp["models"], regime=regime)
    assert on_disk["results"] == _jsonable(want)
    assert on_disk["meta_results"] == _jsonable(meta_breakdown(inp["labels"], inp["models"]))
    assert list(on_disk["models"]) == list(NAMES)
    for m in inp["models"]:
        assert on_disk["models"][m.name] == {
            "kind": m.kind,
            "clips": len(m.video_ids),
            "inputs": list(m.inputs),
            "unknown_names": {},
            "not_judged": 0,
        }

    table = metric_table(want)
    got = pd.read_csv(out / "metrics.csv", index_col=0)
    assert list(got.index) == list(NAMES)
    np.testing.assert_allclose(got.to_numpy(float), table.to_numpy(float), atol=1e-6, equal_nan=True)
    assert on_disk["tables"]["metrics"]["data"] == _jsonable(table.to_numpy().tolist())
    assert {"paper", "metrics", "topk", "meta_f1", "delta_f1"} <= set(on_disk["tables"])

    # the same report written from the three models held in memory, evaluated without a second thread
    again = tmp_path / "in_memory"
    write_report(
        again,
        inp["labels"],
        inp["models"],
        regime=regime,
        figures=False,
        prefetch=False,
        params=rep["params"],
        label_source=rep["labels"]["source"],
    )
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted(p.name for p in again.iterdir()) and len(files) > 15
    for name in files:
        assert (out / name).read_bytes() == (again / name).read_bytes(), name


def test_a_bad_file_among_streamed_ones_fails_the_report_with_its_name(three_models, tmp_path):
    inp = three_models
    preds = tmp_path / "preds"
    preds.mkdir()
    for n in NAMES[:2]:
        (preds / f"{n}.pkl").write_bytes((inp["preds"] / f"{n}.pkl").read_bytes())
    (preds / "zeta.pkl").write_bytes(pickle.dumps({"clip": {"logits": {"a": [0.5] * 7}}}))
    from catalog.errors import ValidationError

    with pytest.raises(ValidationError, match=r"zeta\.pkl"):
        report_build(str(inp["labels_csv"]), [str(preds)], tmp_path / "out", figures=False)
    assert not (tmp_path / "out" / "report.json").exists()
