"""LLM-assisted evaluation of free-text outputs (models that describe a clip rather than classify it).

For each clip and input modality, a judge is shown the model's description and the clip's ground-truth classes
and says, for every class, whether the description mentions it. The classes judged "mentioned" become the
model's predicted label set for that clip, which is then scored like any label-set model.

Two judges:

* :class:`TransformersJudge` asks a local instruction-tuned LLM (a ``transformers`` model directory, no
  download) with :data:`SYSTEM_PROMPT`; it must answer with a Python/JSON dictionary ``{class: true/false}``
  covering exactly the classes asked. :func:`parse_judgement` is strict; every answer it cannot parse is
  counted (``JudgeStats.parse_failures``) and that clip's prediction is left empty (a miss, never a guess).
* :class:`EmbeddingJudge`, the offline fallback: a class counts as mentioned when its name appears in the
  description or a phrase of the description is close to it in an offline text embedding (``wordllama``).

The prompt follows the approach of the VGGSounder paper (an LLM decides, per ground-truth class, whether the
output mentions it; dictionary answer); its wording is ours.
"""
from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

import numpy as np

from .errors import BenchmarkInputError
from .io import read_jsonl_records
from .labels import INPUTS, LabelSet
from .predictions import ModelPredictions

SYSTEM_PROMPT = (
    "You evaluate the output of a model that describes a short video clip in free text. You are given the "
    "model's description and a list of class names (sounds, objects, actions). For every class name, decide "
    "whether the description mentions that class: the same event, sound or object, also in other words or "
    "as a more specific instance of it. Do not guess beyond what the description says.\n"
    "Answer with one Python dictionary and nothing else: each class name exactly as given, in quotes, as a "
    "key; True if the description mentions it, False if not. Example: {\"dog barking\": True, \"rain\": False}"
)

USER_TEMPLATE = "Description:\n{caption}\n\nClass names:\n{classes}"

# the ground-truth subset each input's description is judged against (as for label-set models)
INPUT_SUBSET = {"a": "a", "v": "v", "av": "all"}


class JudgeParseError(ValueError):
    """The judge's answer is not a dictionary of exactly the asked classes to booleans."""


def build_messages(caption: str, classes: list[str]) -> list[dict]:
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": USER_TEMPLATE.format(caption=caption.strip(),
                                                         classes="\n".join(f"- {c}" for c in classes))},
    ]


_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n?(.*?)\n?```$", re.S)
_BOOL_TEXT = {"true": True, "false": False}


def parse_judgement(text: str, classes: list[str]) -> dict[str, bool]:
    """Parse the judge's answer: one dictionary (optionally in a code fence) mapping exactly ``classes`` to
    booleans (``True``/``False``/``true``/``false``). Anything else raises :class:`JudgeParseError`."""
    if not isinstance(text, str):
        raise JudgeParseError(f"answer is {type(text).__name__}, not text")
    body = text.strip()
    m = _FENCE.match(body)
    if m:
        body = m.group(1).strip()
    if not (body.startswith("{") and body.endswith("}")):
        raise JudgeParseError("answer is not a single dictionary")
    try:
        value = ast.literal_eval(body)
    except (ValueError, SyntaxError):
        try:
            value = json.loads(body)
        except json.JSONDecodeError as exc:
            raise JudgeParseError(f"answer is not a valid dictionary ({exc.msg})") from None
    if not isinstance(value, dict):
        raise JudgeParseError("answer is not a dictionary")
    out = {}
    for key, val in value.items():
        if not isinstance(key, str):
            raise JudgeParseError(f"key {key!r} is not a class name")
        if isinstance(val, str) and val.lower() in _BOOL_TEXT:
            val = _BOOL_TEXT[val.lower()]
        if not isinstance(val, bool):
            raise JudgeParseError(f"value for {key!r} is {val!r}, not True/False")
        out[key] = val
    missing = [c for c in classes if c not in out]
    extra = [k for k in out if k not in set(classes)]
    if missing or extra:
        raise JudgeParseError(
            "answer does not cover exactly the asked classes"
            + (f"; missing: {', '.join(missing)}" if missing else "")
            + (f"; not asked: {', '.join(extra)}" if extra else ""))
    return out


@dataclass
class JudgeStats:
    asked: int = 0
    parse_failures: int = 0
    failures: list[dict] = field(default_factory=list)  # first failures: video_id, input, reason

    def as_dict(self) -> dict:
        return {"asked": self.asked, "parse_failures": self.parse_failures, "failures": self.failures[:50]}


Judge = Callable[[str, list[str]], "str | Mapping[str, bool]"]


def judge_captions(name: str, captions: Mapping[str, Mapping[str, str]], labels: LabelSet, judge: Judge,
                   *, inputs: Iterable[str] = INPUTS) -> tuple[ModelPredictions, JudgeStats]:
    """Turn ``{video_id: {input: description}}`` into label-set predictions with ``judge``.

    The judge sees the clip's ground-truth classes of the subset matching the input (audible classes for the
    ``a`` input, visible for ``v``, all for ``av``). A clip of ``captions`` that the label set does not know is
    refused; a clip without a description for an input gets an empty prediction for it.
    """
    if not captions:
        raise BenchmarkInputError(f"model {name!r}: empty prediction set (no descriptions)")
    index = {v: i for i, v in enumerate(labels.video_ids)}
    unknown = [v for v in captions if v not in index]
    if unknown:
        raise BenchmarkInputError(f"model {name!r}: {len(unknown)} clip(s) not in the label set, e.g. {unknown[:5]}")
    inputs = [i for i in inputs]
    truths = {inp: labels.truth(INPUT_SUBSET[inp]) for inp in inputs}
    stats = JudgeStats()
    lists: dict[str, dict[str, list[str]]] = {}
    for vid, per_input in captions.items():
        row = index[vid]
        lists[vid] = {}
        for inp in inputs:
            caption = (per_input or {}).get(inp)
            asked = [labels.classes[j] for j in np.flatnonzero(truths[inp][row])]
            if not caption or not asked:
                lists[vid][inp] = []
                continue
            stats.asked += 1
            try:
                answer = judge(caption, asked)
                verdict = parse_judgement(answer, asked) if isinstance(answer, str) else dict(answer)
            except JudgeParseError as exc:
                stats.parse_failures += 1
                if len(stats.failures) < 50:
                    stats.failures.append({"video_id": vid, "input": inp, "reason": str(exc)})
                lists[vid][inp] = []
                continue
            lists[vid][inp] = [c for c in asked if verdict.get(c)]
    preds = ModelPredictions.from_label_lists(name, lists, labels.classes)
    return preds, stats


class TransformersJudge:
    """An instruction-tuned causal LM from a local directory (``transformers``; nothing is downloaded)."""

    def __init__(self, model_dir: str, *, device: str = "cpu", max_new_tokens: int = 512):
        from pathlib import Path

        if not Path(model_dir).is_dir():
            raise BenchmarkInputError(f"judge model directory {model_dir} not found (a local transformers "
                                      "model directory with config.json, tokenizer and weights is needed)")
        try:
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:  # pragma: no cover - transformers is a requirement
            raise BenchmarkInputError("the LLM judge needs the 'transformers' package") from exc
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
            self.model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True).to(device).eval()
        except (OSError, ValueError) as exc:
            raise BenchmarkInputError(f"judge model directory {model_dir} cannot be loaded: {exc}") from None
        self.device, self.max_new_tokens = device, max_new_tokens

    def __call__(self, caption: str, classes: list[str]) -> str:
        import torch

        messages = build_messages(caption, classes)
        if getattr(self.tokenizer, "chat_template", None):
            prompt = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        else:
            prompt = f"{messages[0]['content']}\n\n{messages[1]['content']}\n\nAnswer:\n"
        enc = self.tokenizer(prompt, return_tensors="pt").to(self.device)
        with torch.no_grad():
            out = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False,
                                      pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id)
        return self.tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)


def wordllama_embedder() -> Callable[[list[str]], np.ndarray]:
    """The ``wordllama`` package's bundled 256-d embedding, loaded from its own files (nothing downloaded)."""
    try:
        from pathlib import Path

        import wordllama
        from safetensors import safe_open
        from wordllama import WordLlama
        from wordllama.inference import WordLlamaInference
    except ImportError as exc:
        raise BenchmarkInputError("the embedding judge needs the 'wordllama' package") from exc
    pkg = Path(wordllama.__file__).parent
    tok = pkg / "tokenizers" / "l2_supercat_tokenizer_config.json"
    weights = pkg / "weights" / "l2_supercat_256.safetensors"
    if not tok.is_file() or not weights.is_file():
        raise BenchmarkInputError(f"the wordllama package at {pkg} does not ship its default weights/tokenizer")
    with safe_open(str(weights), framework="np", device="cpu") as fh:
        emb = fh.get_tensor("embedding.weight")
    model = WordLlamaInference(emb, WordLlama.load_tokenizer(tok), binary=False)
    return lambda texts: np.asarray(model.embed(list(texts), norm=True), dtype=np.float64)


class EmbeddingJudge:
    """Offline fallback: a class is mentioned when its name occurs in the description, or when a phrase of the
    description has cosine similarity >= ``threshold`` with the class name in a ``wordllama`` embedding."""

    def __init__(self, threshold: float = 0.5, embed: Callable[[list[str]], np.ndarray] | None = None):
        self.threshold = threshold
        self._embed = embed
        self._cache: dict[str, np.ndarray] = {}

    def _embedder(self):
        if self._embed is None:
            self._embed = wordllama_embedder()
        return self._embed

    @staticmethod
    def phrases(caption: str) -> list[str]:
        parts = [p.strip() for p in re.split(r"[.;,!?\n]| and | while | with ", caption.lower()) if p.strip()]
        return parts or [caption.lower().strip()]

    def __call__(self, caption: str, classes: list[str]) -> dict[str, bool]:
        text = caption.lower()
        out = {c: c.lower() in text for c in classes}
        todo = [c for c in classes if not out[c]]
        if todo:
            embed = self._embedder()
            phrases = self.phrases(caption)
            new = [c for c in todo if c not in self._cache]
            if new:
                for c, v in zip(new, embed(new)):
                    self._cache[c] = v
            P = embed(phrases)
            P = P / np.maximum(np.linalg.norm(P, axis=1, keepdims=True), 1e-12)
            Cm = np.stack([self._cache[c] for c in todo])
            Cm = Cm / np.maximum(np.linalg.norm(Cm, axis=1, keepdims=True), 1e-12)
            sims = (Cm @ P.T).max(axis=1)
            for c, s in zip(todo, sims):
                out[c] = bool(s >= self.threshold)
        return out


def load_captions_jsonl(path) -> dict[str, dict[str, str]]:
    """Free-text outputs: one JSON object per line, ``{"video_id": ..., "a": text, "v": text, "av": text}``
    (any of the inputs may be missing)."""
    from pathlib import Path

    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise BenchmarkInputError(f"{path}: file not found") from None

    def check(obj, where):
        bad = [k for k in obj if k not in INPUTS]
        if bad:
            raise BenchmarkInputError(f"{where}: unknown key(s) {bad}; allowed: video_id, " + ", ".join(INPUTS))
        if any(not isinstance(v, str) for v in obj.values()):
            raise BenchmarkInputError(f"{where}: descriptions must be strings")

    out: dict[str, dict[str, str]] = read_jsonl_records(lines, str(path), check)
    if not out:
        raise BenchmarkInputError(f"{path}: empty prediction set (no descriptions)")
    return out


def make_judge(spec: str):
    """``embedding`` (offline fallback) or the path of a local transformers model directory."""
    if spec == "embedding":
        return EmbeddingJudge()
    return TransformersJudge(spec)
