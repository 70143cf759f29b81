"""LEAP as the authors built it: their parameter names and shapes, their forward pass (recorded from their code),
strict loading of their checkpoints, their feature-file inputs, and the mapping of the 25 LLP classes to VGGSound."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import models_zoo
from models_zoo.classmap import ClassMapError, load_class_map, map_scores, unreachable_classes
from models_zoo.leap import DEFAULT_CLASS_MAP, LLP_CLASSES, FeatureFileError, LLPFeatureFiles
from models_zoo.runner import run_inference

from .parity_util import fill_seeded_, leap_inputs, state_dict_shapes

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def leap():
    return fill_seeded_(models_zoo.build("leap", "tiny"))


@pytest.mark.parametrize("preset", ["tiny", "base"])
def test_state_dict_names_and_shapes_equal_the_authors(preset):
    expected = json.loads((DATA / f"leap_{preset}_keys.json").read_text())
    got = state_dict_shapes(models_zoo.build("leap", preset))
    assert list(got) == list(expected)  # same names, same order
    assert got == expected


def test_forward_matches_the_authors_code_on_fixed_weights(leap):
    ref = np.load(DATA / "leap_tiny_forward.npz")
    x = leap_inputs()
    with torch.no_grad():
        glob, a, v, a_frame, v_frame, a_o, v_o, _, _ = leap(x["audio"], x["video_s"], x["video_st"], x["label"])
    got = dict(
        global_prob=glob,
        a_prob=a,
        v_prob=v,
        a_frame_prob=a_frame,
        v_frame_prob=v_frame,
        a_o=a_o[..., :32],
        v_o=v_o[..., :32],
    )
    for name, t in got.items():
        # float32 on another CPU (kernels differ by instruction set): 2.6e-6 relative seen on values near 8
        np.testing.assert_allclose(t.numpy(), ref[name], atol=1e-5, rtol=1e-5, err_msg=name)
    # the recording is informative: probabilities spread out, and a small weight change moves them
    assert ref["a_prob"].std() > 0.05 and ref["v_frame_prob"].std() > 0.05
    other = fill_seeded_(models_zoo.build("leap", "tiny"))
    with torch.no_grad():
        other.AVL.la_cma_network[1].feed_forward.w_2.bias.add_(0.05)
        a2 = other(x["audio"], x["video_s"], x["video_st"], x["label"])[1]
    assert (a2 - a).abs().max() > 1e-3


def test_predict_gives_clip_and_per_second_probabilities(leap):
    x = leap_inputs()
    out = leap.predict_segments({k: x[k] for k in ("audio", "video_s", "video_st")})
    assert out["a"].shape == out["v"].shape == out["av"].shape == (2, 25)
    assert out["a_seg"].shape == out["v_seg"].shape == (2, 10, 25)
    assert torch.allclose(out["av"], out["a"] + out["v"] - out["a"] * out["v"])
    # the authors' event rule: audible or visible at the 0.5 threshold
    assert torch.equal(out["global"], ((out["a"] >= 0.5) | (out["v"] >= 0.5)).float())
    assert set(leap.predict(x, ("v",))) == {"v"}
    with pytest.raises(ValueError, match="missing 'video_st'"):
        leap.predict({"audio": x["audio"], "video_s": x["video_s"]})
    with pytest.raises(ValueError, match=r"'audio' has shape \[2, 9, 128\], expected \[B, 10, 128\]"):
        leap.predict({**x, "audio": x["audio"][:, :9]})


def test_the_authors_checkpoint_layout_loads_strictly(leap, tmp_path):
    path = tmp_path / "MMPyr_LEAP_pretrained.pt"
    torch.save({f"module.{k}": v for k, v in leap.state_dict().items()}, path)  # DataParallel prefix
    fresh = models_zoo.build("leap", "tiny", checkpoint=path)
    x = leap_inputs()
    assert torch.allclose(fresh.predict(x)["av"], leap.predict(x)["av"], atol=1e-6)


def test_a_checkpoint_that_does_not_fit_is_refused_naming_every_key(leap, tmp_path):
    sd = dict(leap.state_dict())
    sd.pop("fc_lv.bias")
    sd["fc_la.weight"] = torch.zeros(1, 256)
    sd["seg_head.weight"] = torch.zeros(3)
    bad = tmp_path / "other.pt"
    torch.save(sd, bad)
    fresh = models_zoo.build("leap", "tiny")
    before = fresh.fc_a.weight.clone()
    with pytest.raises(models_zoo.CheckpointError) as err:
        fresh.load_checkpoint(bad)
    msg = str(err.value)
    assert str(bad) in msg
    for key in ("fc_lv.bias", "fc_la.weight checkpoint [1, 256] vs model [1, 512]", "seg_head.weight"):
        assert key in msg
    assert torch.equal(fresh.fc_a.weight, before)  # nothing was loaded


def _write_features(root: Path, vid: str, seed: int, audio_shape=(10, 128)):
    rng = np.random.default_rng(seed)
    for folder, shape in (("vggish", audio_shape), ("res152", (80, 2048)), ("r2plus1d_18", (10, 512))):
        (root / folder).mkdir(parents=True, exist_ok=True)
        np.save(root / folder / f"{vid}.npy", rng.standard_normal(shape).astype(np.float32))


def test_feature_files_in_the_authors_layout_feed_batch_inference(tmp_path):
    root = tmp_path / "feats"
    _write_features(root, "vidA", 1)
    _write_features(root, "vidB", 2)
    _write_features(root, "vidC", 3, audio_shape=(9, 128))
    model = fill_seeded_(models_zoo.build("leap", {"preset": "tiny", "feature_root": str(root)}))
    res = run_inference(model, [("vidA", ""), ("vidB", ""), ("vidC", ""), ("vidD", "")], chunk_size=2)
    assert res.video_ids == ["vidA", "vidB"]
    assert res.scores["av"].shape == (2, 25) and res.scores["av"].dtype == np.float32
    assert "vidC.npy: audio features have shape [9, 128], expected [10, 128]" in res.errors["vidC"]
    assert "vidD.npy: feature file not found" in res.errors["vidD"]
    # the same numbers as the model on the stacked arrays
    direct = model.predict(model.collate_inputs([model.input_loader()("vidA")]))
    assert np.allclose(res.scores["a"][0], direct["a"][0].numpy(), atol=1e-6)


def test_feature_configuration_errors_are_explained(tmp_path):
    model = models_zoo.build("leap", "tiny")
    with pytest.raises(ValueError, match="LEAP reads precomputed features, not media: set feature_root"):
        run_inference(model, [("x", "x.mp4")])
    with pytest.raises(ValueError, match="feature folder\\(s\\) not found: .*vggish"):
        models_zoo.build("leap", {"preset": "tiny", "feature_root": str(tmp_path)})
    with pytest.raises(FeatureFileError, match="not a readable .npy"):
        for d in ("vggish", "res152", "r2plus1d_18"):
            (tmp_path / d).mkdir()
        (tmp_path / "vggish" / "v.npy").write_bytes(b"junk")
        LLPFeatureFiles.from_config(tmp_path)("v")


def test_label_embeddings_come_from_the_authors_file(tmp_path):
    names = ["Speech", "Car"] + [f"c{i}" for i in range(23)]
    emb = {n: torch.full((300,), float(i)) for i, n in enumerate(names)}
    path = tmp_path / "llp_label_glove_embeddings.pt"
    torch.save(emb, path)
    model = models_zoo.build("leap", {"preset": "tiny", "label_embeddings": str(path)})
    assert model.label_text.shape == (25, 300) and model.label_text[1, 0] == 1.0 and model.label_text[24, 0] == 24.0
    torch.save({k: v for k, v in list(emb.items())[:24]}, path)
    with pytest.raises(ValueError, match=r"holds \[24, 300\], expected \[25, 300\]"):
        models_zoo.build("leap", {"preset": "tiny", "label_embeddings": str(path)})


def test_shipped_mapping_covers_every_llp_class_with_vggsound_names():
    from models_zoo.text_embed import default_class_names

    vgg = default_class_names()
    mapping = load_class_map(DEFAULT_CLASS_MAP, LLP_CLASSES)
    assert set(mapping) == set(LLP_CLASSES)
    assert all(t in vgg for ts in mapping.values() for t in ts)
    assert mapping["Frying_(food)"] == ()  # VGGSound has no frying class
    assert mapping["Dog"] == (
        "dog barking",
        "dog bow-wow",
        "dog howling",
        "dog growling",
        "dog whimpering",
        "dog baying",
    )
    assert mapping["Blender"] == ("eletric blender running",)
    unreachable = unreachable_classes(mapping, vgg)
    assert len(unreachable) == 309 - 47 and "playing piano" in unreachable and "dog barking" not in unreachable


def test_scores_map_onto_the_taxonomy_columns():
    src = ["Dog", "Cat", "Speech"]
    tgt = ["dog barking", "cat meowing", "male speech, man speaking", "playing piano", "dog howling"]
    mapping = {"Dog": ("dog barking", "dog howling"), "Cat": ("cat meowing",), "Speech": ()}
    out = map_scores(np.array([[0.9, 0.2, 0.7]]), src, tgt, mapping)
    assert out.tolist() == [[pytest.approx(0.9), pytest.approx(0.2), -1.0, -1.0, pytest.approx(0.9)]]
    # two own classes on one taxonomy class: the higher score
    out = map_scores(np.array([[0.3, 0.6]]), ["A", "B"], ["x"], {"A": ("x",), "B": ("x",)})
    assert out[0, 0] == pytest.approx(0.6)
    with pytest.raises(ClassMapError, match=r"not in the taxonomy: \['dog bark'\]"):
        map_scores(np.zeros((1, 1)), ["Dog"], tgt, {"Dog": ("dog bark",)})
    with pytest.raises(ClassMapError, match=r"\['Dog'\] are not taxonomy classes and no class mapping"):
        map_scores(np.zeros((1, 1)), ["Dog"], tgt, None)


def test_a_mapping_file_must_list_every_class_of_the_model(tmp_path):
    p = tmp_path / "map.csv"
    p.write_text("source,target,note\nDog,dog barking,\n")
    with pytest.raises(ClassMapError, match=r"\['Cat'\] are not listed"):
        load_class_map(p, ["Dog", "Cat"])
    p.write_text("source,target\nDog,dog barking\nCat,\nCow,cattle mooing\n")
    with pytest.raises(ClassMapError, match=r"unknown source class\(es\) \['Cow'\]"):
        load_class_map(p, ["Dog", "Cat"])
