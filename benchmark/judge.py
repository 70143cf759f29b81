"""LLM-assisted evaluation of free-text outputs (models that describe a clip rather than classify it).

For each clip and input modality, a judge is shown the model's description and target classes of the clip and
decides, for every class, whether the description names it. The classes judged "mentioned" become the model's
predicted label set for that clip, which is then scored like any label-set model.

Protocols (:data:`PROTOCOLS`):

* ``vggsounder`` (default) -- the VGGSounder paper's judge, as its authors ran it (repository
  ``Bizilizi/VGGSounder``, ``experiments/gpt-evaluation/``: ``evaluate_model.py``, ``llm_backend.py``,
  ``gather_results.py``): a Qwen3 model gets :data:`VGGSOUNDER_SYSTEM_PROMPT` (instructions and three
  few-shot examples, verbatim) and a user turn with the question the described model was asked
  (:data:`VGGSOUNDER_QUESTIONS`), **all** ground-truth classes of the clip (a Python list) and the description; it
  answers one Python dictionary ``{class: {"pred": "yes"|"no", "score": 0..5}}``. Thinking is off:
  ``enable_thinking=False`` in the chat template where the template knows it, plus the authors' ``/no_think``
  user turn for such (Qwen3) templates. A class is predicted when ``pred`` is ``yes`` (or, with
  ``score_threshold``, when its score reaches it -- the authors' ``--threshold``).
* ``truefalse`` -- our earlier prompt: the classes of the subset matching the input (audible for ``a``, visible
  for ``v``, all for ``av``) and a dictionary ``{class: True/False}``.

Parsing is strict for both (:func:`parse_vggsounder_judgement`, :func:`parse_judgement`): exactly the asked
classes, well-typed values; every answer that fails is counted (``JudgeStats.parse_failures``) and that clip's
prediction is left empty (a miss, never a guess).

Judges: :class:`TransformersJudge` (any local instruction-tuned ``transformers`` model directory, nothing is
downloaded; greedy decoding) and :class:`EmbeddingJudge`, an offline fallback with no LLM (a class counts as
mentioned when its name appears in the description or a phrase of it is close in a ``wordllama`` embedding; it
follows the ``truefalse`` subsets).
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
    'key; True if the description mentions it, False if not. Example: {"dog barking": True, "rain": False}'
)

USER_TEMPLATE = "Description:\n{caption}\n\nClass names:\n{classes}"

# the ground-truth subset each input's description is judged against (as for label-set models)
INPUT_SUBSET = {"a": "a", "v": "v", "av": "all"}

# --- the VGGSounder paper's judge (verbatim from the authors' evaluate_model.py, typography and the
# inconsistent score of the second example included, so that results can be compared with theirs) ---
VGGSOUNDER_SYSTEM_PROMPT = """
You are an intelligent chatbot designed for evaluating the correctness of generative outputs for classification pairs. Your task is to compare the predicted answer with the correct answer and determine if they match meaningfully. Here’s how you can accomplish the task: 

- Focus on the meaningful match between the predicted answer and the correct answer.
- Consider synonyms or paraphrases as valid matches.
- Evaluate the correctness of the prediction compared to the answer.
- The correct answer, might contain multiple classes. Treat them independently and evaluate the correctness of all them w.r.t predicted answer.

Provide your evaluation only as a yes/no and score where the score is an integer value between 0 and 5, with 5 indicating the highest meaningful match.

Please generate the response in the form of a Python dictionary string where names of classes are keys and values are dictionary strings  with keys ’pred’ and ’score’, where value of ’pred’ is a string of ’yes’ or ’no’ and value of ’score’ is in INTEGER, not STRING.

DO NOT PROVIDE ANY OTHER OUTPUT TEXT OR EXPLANATION. Only provide the Python dictionary string. For example, your response should look like this: 

{"male speech, man speaking": {"pred": "yes", "score": 4}, "playing banjo": {"pred": "no", "score": 0}}

Example 1.

<Question> 
Identify the main sounds present in the given audio clip with a few words.

<Correct Answers> 
["cat caterwauling", "cat meowing"] 

<Predicted Answer> 
The main sounds present in the given audio clip are:

1. A ticking sound, possibly from a clock or timer.
2. A mechanical sound, which could be from a machine or device.
3. A human voice, which is speaking in the background.

Output: {"cat caterwauling": {"pred": "no", "score": 0}, "cat meowing": {"pred": "no", "score": 0}}

Example 2.

<Question> 
What actions are being performed in this audio, explain all sounds and actions in the audio? Please provide a short answer.

<Correct Answers> 
["cuckoo bird calling", "mynah bird singing", "bird chirping, tweeting"]

<Predicted Answer> 
The audio features a cuckoo bird calling in the distance and some chirping and tweeting from smaller birds.

Output: {"cuckoo bird calling": {"pred": "yes", "score": 5}, "mynah bird singing": {"pred": "no", "score": 0}, "bird chirping, tweeting": {"pred": "no", "score": 5}}

Example 3.

<Question> 
What actions are being performed in this video, explain all sounds and actions in the video? Please provide a short answer.

<Correct Answers> 
["male speech, man speaking", "playing hammond organ"]

<Predicted Answer> 
The video shows a man who is playing regular piano and speaking with someone.

Output: {"male speech, man speaking": {"pred": "yes", "score": 5}, "playing hammond organ": {"pred": "yes", "score": 3}}
"""

VGGSOUNDER_USER_TEMPLATE = """<Question>
{question}

<Correct Answers> 
{answers}

<Predicted Answer>
{prediction}
"""

# the question the described model was asked (the authors' prompts for the open-ended models)
VGGSOUNDER_QUESTIONS = {
    "a": "What actions are being performed in this audio, explain all sounds and actions in the audio? Please "
    "provide a short answer.",
    "v": "What actions are being performed in this video, explain all sounds and actions in the video? Please "
    "provide a short answer.",
}
VGGSOUNDER_QUESTIONS["av"] = VGGSOUNDER_QUESTIONS["v"]
NO_THINK = "/no_think"  # Qwen3's soft switch, sent by the authors as a second user turn


class JudgeParseError(ValueError):
    """The judge's answer is not a dictionary of exactly the asked classes to booleans."""


def build_messages(caption: str, classes: list[str]) -> list[dict]:
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {
            "role": "user",
            "content": USER_TEMPLATE.format(caption=caption.strip(), classes="\n".join(f"- {c}" for c in classes)),
        },
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
            + (f"; not asked: {', '.join(extra)}" if extra else "")
        )
    return out


def build_vggsounder_messages(caption: str, classes: list[str], inp: str = "av") -> list[dict]:
    """System prompt + user turn of the paper's protocol; ``classes`` are the clip's target classes (written as
    a Python list, as the authors' pandas code did), ``inp`` the input the description was produced from."""
    if inp not in VGGSOUNDER_QUESTIONS:
        raise BenchmarkInputError(f"unknown input {inp!r}; allowed: {', '.join(VGGSOUNDER_QUESTIONS)}")
    user = VGGSOUNDER_USER_TEMPLATE.format(
        question=VGGSOUNDER_QUESTIONS[inp], answers=str(list(classes)), prediction=caption
    )
    return [{"role": "system", "content": VGGSOUNDER_SYSTEM_PROMPT}, {"role": "user", "content": user}]


_THINK = re.compile(r"^\s*<think>.*?</think>\s*", re.S)


def parse_vggsounder_judgement(text: str, classes: list[str], score_threshold: int | None = None) -> dict[str, bool]:
    """Parse an answer of the paper's protocol: one dictionary (optionally in a code fence, after an empty or
    full ``<think>`` block) mapping exactly ``classes`` to ``{"pred": "yes"|"no", "score": int 0..5}``. Returns
    ``{class: mentioned}``: ``pred == "yes"``, or ``score >= score_threshold`` when a threshold is given.
    Anything else raises :class:`JudgeParseError`."""
    if not isinstance(text, str):
        raise JudgeParseError(f"answer is {type(text).__name__}, not text")
    body = _THINK.sub("", text).strip()
    m = _FENCE.match(body)
    if m:
        body = m.group(1).strip()
    body = body.replace("\"'", '"').replace("'\"", '"')  # the authors' clean-up of mixed quotes
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
        if not isinstance(val, dict) or set(val) != {"pred", "score"}:
            raise JudgeParseError(f"value for {key!r} is {val!r}, not {{'pred': 'yes'|'no', 'score': 0..5}}")
        pred, score = val["pred"], val["score"]
        if not isinstance(pred, str) or pred.strip().lower() not in ("yes", "no"):
            raise JudgeParseError(f"pred for {key!r} is {pred!r}, not 'yes' or 'no'")
        if isinstance(score, bool) or not isinstance(score, int) or not 0 <= score <= 5:
            raise JudgeParseError(f"score for {key!r} is {score!r}, not an integer 0..5")
        out[key] = (score >= score_threshold) if score_threshold is not None else pred.strip().lower() == "yes"
    missing = [c for c in classes if c not in out]
    extra = [k for k in out if k not in set(classes)]
    if missing or extra:
        raise JudgeParseError(
            "answer does not cover exactly the asked classes"
            + (f"; missing: {', '.join(missing)}" if missing else "")
            + (f"; not asked: {', '.join(extra)}" if extra else "")
        )
    return out


@dataclass(frozen=True)
class Protocol:
    """How a judge is asked and read: the messages, the parser, and the ground-truth subset per input."""

    name: str
    subsets: Mapping[str, str]
    score_threshold: int | None = None

    def messages(self, caption: str, classes: list[str], inp: str) -> list[dict]:
        if self.name == "vggsounder":
            return build_vggsounder_messages(caption, classes, inp)
        return build_messages(caption, classes)

    def parse(self, text: str, classes: list[str]) -> dict[str, bool]:
        if self.name == "vggsounder":
            return parse_vggsounder_judgement(text, classes, self.score_threshold)
        return parse_judgement(text, classes)


PROTOCOLS = {
    # the authors judge every input's description against all classes of the clip (their target list)
    "vggsounder": Protocol("vggsounder", {"a": "all", "v": "all", "av": "all"}),
    "truefalse": Protocol("truefalse", INPUT_SUBSET),
}
DEFAULT_PROTOCOL = "vggsounder"


def get_protocol(protocol: "str | Protocol | None", score_threshold: int | None = None) -> Protocol:
    if isinstance(protocol, Protocol):
        return protocol
    name = protocol or DEFAULT_PROTOCOL
    if name not in PROTOCOLS:
        raise BenchmarkInputError(f"unknown judge protocol {name!r}; allowed: {', '.join(PROTOCOLS)}")
    if score_threshold is not None:
        if name != "vggsounder" or isinstance(score_threshold, bool) or not 0 <= int(score_threshold) <= 5:
            raise BenchmarkInputError(
                f"score_threshold {score_threshold!r}: only the vggsounder protocol has scores, allowed 0..5"
            )
        return Protocol(name, PROTOCOLS[name].subsets, int(score_threshold))
    return PROTOCOLS[name]


@dataclass
class JudgeStats:
    asked: int = 0
    parse_failures: int = 0
    failures: list[dict] = field(default_factory=list)  # first failures: video_id, input, reason
    protocol: str = DEFAULT_PROTOCOL

    def as_dict(self) -> dict:
        return {
            "protocol": self.protocol,
            "asked": self.asked,
            "parse_failures": self.parse_failures,
            "failures": self.failures[:50],
        }


Judge = Callable[[str, list[str], str], "str | Mapping[str, bool]"]
"""judge(description, target classes, input) -> the raw answer text, or {class: mentioned}."""


def judge_captions(
    name: str,
    captions: Mapping[str, Mapping[str, str]],
    labels: LabelSet,
    judge: Judge,
    *,
    inputs: Iterable[str] = INPUTS,
    protocol: "str | Protocol | None" = None,
) -> tuple[ModelPredictions, JudgeStats]:
    """Turn ``{video_id: {input: description}}`` into label-set predictions with ``judge``.

    ``protocol`` (default: the judge's own ``protocol`` attribute, else ``vggsounder``) says which ground-truth
    classes the judge sees (vggsounder: all classes of the clip; truefalse: audible for ``a``, visible for ``v``,
    all for ``av``) and how a text answer is parsed. A clip of ``captions`` that the label set does not know is
    refused; a clip without a description for an input gets an empty prediction for it.
    """
    proto = get_protocol(protocol if protocol is not None else getattr(judge, "protocol", None))
    if not captions:
        raise BenchmarkInputError(f"model {name!r}: empty prediction set (no descriptions)")
    index = {v: i for i, v in enumerate(labels.video_ids)}
    unknown = [v for v in captions if v not in index]
    if unknown:
        raise BenchmarkInputError(f"model {name!r}: {len(unknown)} clip(s) not in the label set, e.g. {unknown[:5]}")
    inputs = [i for i in inputs]
    truths = {inp: labels.truth(proto.subsets[inp]) for inp in inputs}
    stats = JudgeStats(protocol=proto.name)
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
                answer = judge(caption, asked, inp)
                verdict = proto.parse(answer, asked) if isinstance(answer, str) else dict(answer)
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
    """An instruction-tuned causal LM from a local directory (``transformers``; nothing is downloaded), asked with
    ``protocol`` (default: the VGGSounder paper's; run it with a Qwen3 model, e.g. Qwen3-32B as the authors did).
    Greedy decoding; thinking is switched off where the chat template supports it."""

    def __init__(
        self,
        model_dir: str,
        *,
        device: str = "cpu",
        max_new_tokens: int = 1024,
        protocol: "str | Protocol" = DEFAULT_PROTOCOL,
        score_threshold: int | None = None,
    ):
        from pathlib import Path

        self.protocol = get_protocol(protocol, score_threshold)
        if not Path(model_dir).is_dir():
            raise BenchmarkInputError(
                f"judge model directory {model_dir} not found (a local transformers "
                "model directory with config.json, tokenizer and weights is needed)"
            )
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

    @property
    def thinking_switch(self) -> bool:
        """Whether the chat template has Qwen3's ``enable_thinking`` switch."""
        return "enable_thinking" in str(getattr(self.tokenizer, "chat_template", None) or "")

    def prompt(self, caption: str, classes: list[str], inp: str = "av") -> str:
        """The text given to the model (chat template applied, thinking off where supported)."""
        messages = self.protocol.messages(caption, classes, inp)
        if getattr(self.tokenizer, "chat_template", None):
            extra = {}
            if self.thinking_switch:
                extra["enable_thinking"] = False
                if self.protocol.name == "vggsounder":
                    messages = messages + [{"role": "user", "content": NO_THINK}]  # as the authors sent it
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **extra)
        return "\n\n".join(m["content"].strip() for m in messages) + "\n\nAnswer:\n"

    def __call__(self, caption: str, classes: list[str], inp: str = "av") -> str:
        import torch

        enc = self.tokenizer(self.prompt(caption, classes, inp), return_tensors="pt").to(self.device)
        with torch.no_grad():
            out = self.model.generate(
                **enc,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
            )
        text = self.tokenizer.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        return _THINK.sub("", text).strip()


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

    protocol = "truefalse"  # judged against the subset matching the input, like the truefalse prompt

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

    def __call__(self, caption: str, classes: list[str], inp: str = "av") -> dict[str, bool]:
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


def make_judge(spec: str, *, protocol: str | None = None, score_threshold: int | None = None, **kwargs):
    """``embedding`` (offline fallback), or a local transformers model directory judged with the VGGSounder
    protocol; ``truefalse:<dir>`` (or ``protocol="truefalse"``) asks it with our True/False prompt instead."""
    if spec == "embedding":
        return EmbeddingJudge()
    for name in PROTOCOLS:
        if spec.startswith(name + ":"):
            if protocol not in (None, name):
                raise BenchmarkInputError(f"judge {spec!r} names protocol {name!r} but protocol={protocol!r} was given")
            spec, protocol = spec[len(name) + 1 :], name
    return TransformersJudge(spec, protocol=protocol or DEFAULT_PROTOCOL, score_threshold=score_threshold, **kwargs)
