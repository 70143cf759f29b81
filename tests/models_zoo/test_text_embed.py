from __future__ import annotations

import numpy as np
import pytest

from models_zoo import text_embed as te


def test_hash_fallback_is_deterministic_and_spelling_aware():
    h = te.HashEmbedder()
    a = h.embed(["dog barking", "Dog  barking!", "playing piano"])
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert np.allclose(a[0], a[1])
    assert a[0] @ a[2] < 0.5
    assert np.allclose(te.HashEmbedder().embed(["dog barking"])[0], a[0])


def test_wordllama_is_semantic():
    pytest.importorskip("wordllama")
    emb = te.get_embedder("wordllama")
    e = emb.embed(["a dog barks", "dog barking", "playing piano"])
    assert e[0] @ e[1] > e[0] @ e[2] + 0.3


def test_label_embeddings_cached_on_disk(tmp_path):
    names = ["dog barking", "cat meowing"]
    a = te.label_embeddings(names, backend="hash", cache_dir=tmp_path)
    files = list(tmp_path.glob("labels-hash-*.npy"))
    assert len(files) == 1
    np.save(files[0], np.full_like(a, 0.25))  # a cached file is what gets used next time
    assert np.allclose(te.label_embeddings(names, backend="hash", cache_dir=tmp_path), 0.25)


def test_default_class_names_and_bad_backend():
    names = te.default_class_names()
    assert len(names) == 309 and names[0] == "ambulance siren"
    with pytest.raises(ValueError, match="allowed: auto, wordllama, hash"):
        te.get_embedder("bert")
