"""Offline text embeddings for class names (LEAP label queries, Crab output -> class matching).

Backend "wordllama": the `wordllama` PyPI package, whose wheel ships its 256-d weights and tokenizer
(loaded from the package files directly, so nothing is downloaded). Backend "hash": a deterministic
hashed bag of words + character trigrams (no semantics beyond spelling), used when wordllama is not
installed or when asked for explicitly. Embeddings are L2-normalised float32 and cached on disk.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import zlib
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path(os.environ.get("AVCROWD_MODEL_CACHE", Path.home() / ".cache" / "avcrowd"))


def normalize_name(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^a-z0-9,\- ]+", " ", text.lower())).strip(" ,")


class HashEmbedder:
    name = "hash"

    def __init__(self, dim: int = 256):
        self.dim = dim

    def _features(self, text: str):
        t = normalize_name(text)
        words = re.findall(r"[a-z0-9]+", t)
        for w in words:
            yield "w:" + w, 1.0
            padded = f"#{w}#"
            for i in range(len(padded) - 2):
                yield "c:" + padded[i : i + 3], 0.5

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for feat, weight in self._features(text):
                h = zlib.crc32(feat.encode())
                out[i, h % self.dim] += weight if (h >> 16) & 1 else -weight
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)


class WordLlamaEmbedder:
    name = "wordllama"

    def __init__(self):
        import wordllama  # noqa: PLC0415
        from safetensors import safe_open  # noqa: PLC0415
        from wordllama import WordLlama  # noqa: PLC0415
        from wordllama.inference import WordLlamaInference  # noqa: PLC0415

        pkg = Path(wordllama.__file__).parent
        tok_path = pkg / "tokenizers" / "l2_supercat_tokenizer_config.json"
        w_path = pkg / "weights" / "l2_supercat_256.safetensors"
        if not tok_path.is_file() or not w_path.is_file():
            raise ImportError(f"wordllama package at {pkg} does not ship its default weights/tokenizer")
        tokenizer = WordLlama.load_tokenizer(tok_path)
        with safe_open(str(w_path), framework="np", device="cpu") as f:
            emb = f.get_tensor("embedding.weight")
        self._model = WordLlamaInference(emb, tokenizer, binary=False)
        self.dim = int(emb.shape[1])

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        e = np.asarray(self._model.embed(list(texts), norm=True), dtype=np.float32)
        return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)


@lru_cache(maxsize=4)
def get_embedder(backend: str = "auto"):
    """backend: "auto" (wordllama if installed, else hash, with a warning), "wordllama", "hash"."""
    if backend not in ("auto", "wordllama", "hash"):
        raise ValueError(f"unknown text-embedding backend {backend!r}; allowed: auto, wordllama, hash")
    if backend == "hash":
        return HashEmbedder()
    try:
        return WordLlamaEmbedder()
    except ImportError as exc:
        if backend == "wordllama":
            raise
        log.warning(
            "wordllama not available (%s): using the hashing fallback embedding, which only "
            "matches spelling, not meaning",
            exc,
        )
        return HashEmbedder()


def label_embeddings(class_names: Sequence[str], backend: str = "auto", cache_dir=None) -> np.ndarray:
    """[len(class_names), dim] normalised embeddings of the class names, cached as .npy."""
    emb = get_embedder(backend)
    key = hashlib.sha256(("\n".join(class_names) + "|" + emb.name).encode()).hexdigest()[:16]
    cache = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR
    path = cache / f"labels-{emb.name}-{key}.npy"
    if path.is_file():
        try:
            arr = np.load(path)
            if arr.shape[0] == len(class_names):
                return arr.astype(np.float32, copy=False)
        except (OSError, ValueError):
            pass
    arr = emb.embed(list(class_names))
    try:
        cache.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, arr)
        os.replace(tmp, path)
    except OSError as exc:  # read-only home: still works, just not cached
        log.warning("cannot cache label embeddings in %s: %s", cache, exc)
    return arr


def default_class_names() -> list[str]:
    """The 309 VGGSound classes in logit order, from the `vggsounder` package's classes.csv."""
    import csv  # noqa: PLC0415
    from importlib import resources  # noqa: PLC0415

    try:
        ref = resources.files("vggsounder") / "data" / "classes.csv"
        with ref.open("r", encoding="utf-8") as f:
            rows = sorted(csv.DictReader(f), key=lambda r: int(r["index"]))
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise RuntimeError(
            "class names not given and the 'vggsounder' package is not installed; pass class_names explicitly"
        ) from exc
    return [r["display_name"] for r in rows]
