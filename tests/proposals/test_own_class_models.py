"""A model with its own class list (LEAP: the 25 LLP classes) feeds a run through its class mapping; a checkpoint
that does not fit its architecture is refused at registration, naming the file and the keys."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from django.core.management import CommandError, call_command

from catalog.models import Clip, Dataset
from proposals import gpu
from proposals.models import ModelCheckpoint, ModelRun
from proposals.selectors import run_scores


def _features(root, vid, seed):
    rng = np.random.default_rng(seed)
    for folder, shape in (("vggish", (10, 128)), ("res152", (80, 2048)), ("r2plus1d_18", (10, 512))):
        (root / folder).mkdir(parents=True, exist_ok=True)
        np.save(root / folder / f"{vid}.npy", rng.standard_normal(shape).astype(np.float32))


def test_a_leap_run_maps_llp_classes_onto_the_taxonomy(taxonomy, tmp_path, django_capture_on_commit_callbacks):
    from models_zoo.classmap import load_class_map
    from models_zoo.leap import DEFAULT_CLASS_MAP, LLP_CLASSES

    ds = Dataset.objects.create(name="llp-feats")
    for i in range(3):
        Clip.objects.create(dataset=ds, video_id=f"llp{i}")  # no media: LEAP reads feature files
    for i in range(2):
        _features(tmp_path, f"llp{i}", i)
    config = {"preset": "tiny", "feature_root": str(tmp_path)}
    gpu.clear_model_cache()
    with django_capture_on_commit_callbacks(execute=True):
        call_command(
            "compute_predictions",
            "--dataset",
            ds.name,
            "--checkpoint",
            "leap-tiny",
            "--register",
            "leap",
            "",
            "--config",
            __import__("json").dumps(config),
            stdout=io.StringIO(),
        )
    run = ModelRun.objects.get(dataset=ds, checkpoint__name="leap-tiny")
    assert run.status == "done"
    vids, scores = run_scores(run)
    assert vids == ["llp0", "llp1"] and scores["av"].shape == (2, 309)
    missing = [e for e in run.errors if e["video_id"] == "llp2"]
    assert missing and "llp2.npy: feature file not found" in missing[0]["error"]
    # the mapped columns carry LEAP's probabilities; classes LEAP cannot propose score below all of them
    model = gpu.get_model("leap", "", config, "cpu")
    direct = model.predict(model.collate_inputs([model.input_loader()("llp0")]))["av"][0].numpy()
    mapping = load_class_map(DEFAULT_CLASS_MAP, LLP_CLASSES)
    col = {c: j for j, c in enumerate(taxonomy)}
    assert scores["av"][0, col["dog bow-wow"]] == pytest.approx(direct[LLP_CLASSES.index("Dog")], abs=1e-6)
    assert scores["av"][0, col["people clapping"]] == pytest.approx(direct[LLP_CLASSES.index("Clapping")], abs=1e-6)
    reachable = [col[t] for ts in mapping.values() for t in ts]
    unreachable = np.setdiff1d(np.arange(309), reachable)
    assert (scores["av"][:, unreachable] == -1.0).all()
    assert scores["av"][:, reachable].min() >= 0.0
    gpu.clear_model_cache()


def test_a_checkpoint_that_does_not_fit_is_not_registered(taxonomy, tmp_path):
    import models_zoo

    ds = Dataset.objects.create(name="reg-check")
    Clip.objects.create(dataset=ds, video_id="c0")
    sd = dict(models_zoo.build("leap", "tiny").state_dict())
    sd.pop("fc_lv.weight")
    sd["fc_a.weight"] = torch.zeros(512, 64)
    bad = tmp_path / "MMPyr_LEAP_pretrained.pt"
    torch.save(sd, bad)
    with pytest.raises(CommandError) as err:
        call_command(
            "compute_predictions",
            "--dataset",
            ds.name,
            "--checkpoint",
            "leap-bad",
            "--register",
            "leap",
            str(bad),
            "--config",
            '{"preset": "tiny"}',
        )
    msg = str(err.value)
    assert str(bad) in msg and "fc_lv.weight" in msg and "fc_a.weight checkpoint [512, 64] vs model [512, 128]" in msg
    assert not ModelCheckpoint.objects.filter(name="leap-bad").exists()
    good = tmp_path / "good.pt"
    torch.save(models_zoo.build("leap", "tiny").state_dict(), good)
    from proposals.services import checkpoint_register

    assert checkpoint_register("leap-good", "leap", str(good), {"preset": "tiny"}).path == str(good)
