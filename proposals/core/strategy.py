"""Proposal strategy: turn model predictions into candidate classes per clip.

Pure numpy, no Django. The default strategy is the VGGSounder recipe:

* the clip's original dataset label (``original``);
* the top-1 class of every model on visual and on audio-visual input and the top-5 on audio
  input (``topk``);
* a consensus pool (``consensus``): per model, the union over the selected input modalities of
  its top-10 classes per clip and of the globally highest ``global_n`` scores of that
  (model, modality) score matrix across the whole dataset; a class is proposed when at least
  ``min_models`` distinct models have it in their pool;
* always-proposed common classes (``common``);
* every label of set-valued models (Gemini, an LLM, ... imported as label lists) (``label_set``).

Every proposal keeps its provenance: a list of ``{"rule", "model", "modality"}`` entries.

Ties are broken deterministically: within a clip the lower class index wins; across the
dataset the earlier (clip, class) position in row-major order wins.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping

import numpy as np

MODALITIES = ("a", "v", "av")
RULES = ("original", "topk", "consensus", "common", "label_set")

COMMON_CLASSES = (
    "wind noise",
    "wind rustling leaves",
    "male speech, man speaking",
    "female speech, woman speaking",
    "child speech, kid speaking",
    "bird chirping, tweeting",
    "cricket chirping",
    "sea waves",
)


class StrategyError(ValueError):
    """A strategy or its inputs are malformed; the message says what and what is allowed."""


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclass
class ConsensusConfig:
    k: int = 10
    global_n: int = 60_000
    min_models: int = 2
    models: list[str] | None = None  # None: every model (score and label-set models)
    modalities: list[str] = field(default_factory=lambda: list(MODALITIES))


@dataclass
class Strategy:
    original_label: bool = True
    topk: dict[str, int] = field(default_factory=lambda: {"a": 5, "v": 1, "av": 1})
    topk_per_model: dict[str, dict[str, int]] = field(default_factory=dict)
    consensus: ConsensusConfig = field(default_factory=ConsensusConfig)
    common_classes: list[str] = field(default_factory=lambda: list(COMMON_CLASSES))
    label_set_models: bool = True

    # -- serialisation ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "Strategy":
        """Build a strategy from a (partial) dict; missing keys take the default values."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise StrategyError(f"strategy must be a JSON object, got {type(data).__name__}")
        allowed = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise StrategyError(f"unknown strategy key(s) {unknown}; allowed: {sorted(allowed)}")
        kwargs = dict(data)
        cons = kwargs.get("consensus")
        if cons is not None:
            if not isinstance(cons, Mapping):
                raise StrategyError("strategy.consensus must be an object")
            callowed = {f.name for f in dataclasses.fields(ConsensusConfig)}
            cunknown = sorted(set(cons) - callowed)
            if cunknown:
                raise StrategyError(f"unknown strategy.consensus key(s) {cunknown}; allowed: {sorted(callowed)}")
            kwargs["consensus"] = ConsensusConfig(**cons)
        strategy = cls(**kwargs)
        strategy.validate()
        return strategy

    @classmethod
    def from_json(cls, text: str) -> "Strategy":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise StrategyError(f"strategy is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    # -- validation ------------------------------------------------------------------------
    def validate(self) -> None:
        def check_k(where: str, value: Any) -> None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise StrategyError(f"{where} must be an integer >= 0, got {value!r}")

        def check_topk(where: str, mapping: Any) -> None:
            if not isinstance(mapping, Mapping):
                raise StrategyError(f"{where} must be an object {{modality: k}}")
            for mod, k in mapping.items():
                if mod not in MODALITIES:
                    raise StrategyError(f"{where}: unknown modality {mod!r}; allowed: {list(MODALITIES)}")
                check_k(f"{where}.{mod}", k)

        check_topk("topk", self.topk)
        if not isinstance(self.topk_per_model, Mapping):
            raise StrategyError("topk_per_model must be an object {model: {modality: k}}")
        for model, mapping in self.topk_per_model.items():
            check_topk(f"topk_per_model.{model}", mapping)
        c = self.consensus
        check_k("consensus.k", c.k)
        check_k("consensus.global_n", c.global_n)
        check_k("consensus.min_models", c.min_models)
        if c.min_models < 1:
            raise StrategyError("consensus.min_models must be >= 1")
        if c.models is not None and (not isinstance(c.models, list) or not all(isinstance(m, str) for m in c.models)):
            raise StrategyError("consensus.models must be null (all models) or a list of names")
        for mod in c.modalities:
            if mod not in MODALITIES:
                raise StrategyError(f"consensus.modalities: unknown modality {mod!r}; allowed: {list(MODALITIES)}")
        if not isinstance(self.common_classes, list) or not all(isinstance(x, str) for x in self.common_classes):
            raise StrategyError("common_classes must be a list of class names")

    def k_for(self, model: str, modality: str) -> int:
        per = self.topk_per_model.get(model, {})
        if modality in per:
            return int(per[modality])
        return int(self.topk.get(modality, 0))


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


class _ClipsAndClasses:
    """What :class:`Predictions` and :class:`PredictionRows` share: the number of clips, the model names and the
    class-name lookup (from their ``video_ids``, ``scores``, ``label_sets`` and ``class_names``)."""

    @property
    def n_clips(self) -> int:
        return len(self.video_ids)

    @property
    def models(self) -> list[str]:
        return list(self.scores) + list(self.label_sets)

    def class_index(self, name: str) -> int:
        try:
            return self._class_lookup()[name]
        except KeyError:
            raise StrategyError(
                f"unknown class name {name!r} (not one of the {len(self.class_names)} taxonomy classes)"
            ) from None

    def _class_lookup(self) -> dict[str, int]:
        lookup = getattr(self, "_lookup", None)
        if lookup is None:
            lookup = {name: i for i, name in enumerate(self.class_names)}
            self._lookup = lookup
        return lookup


@dataclass
class Predictions(_ClipsAndClasses):
    """All predictions of one dataset, rows aligned to ``video_ids``, columns to ``class_names``.

    scores:     model -> modality -> float array [n, C] (logits or probabilities)
    label_sets: model -> modality -> bool array [n, C] (models that output class sets)
    original:   bool array [n, C] of the clips' original dataset labels (or None)
    """

    class_names: list[str]
    video_ids: list[str]
    scores: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    label_sets: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    original: np.ndarray | None = None
    coverage: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n, c = len(self.video_ids), len(self.class_names)
        for model, cov in list(self.coverage.items()):
            cov = np.asarray(cov, dtype=bool)
            if cov.shape != (n,):
                raise StrategyError(f"coverage[{model!r}] has shape {cov.shape}, expected ({n},)")
            self.coverage[model] = cov
        if len(set(self.video_ids)) != n:
            raise StrategyError("video_ids contain duplicates")
        for kind, store in (("scores", self.scores), ("label_sets", self.label_sets)):
            for model, per_mod in store.items():
                for mod, arr in per_mod.items():
                    where = f"{kind}[{model!r}][{mod!r}]"
                    if mod not in MODALITIES:
                        raise StrategyError(f"{where}: unknown modality; allowed: {list(MODALITIES)}")
                    arr = np.asarray(arr)
                    if arr.shape != (n, c):
                        raise StrategyError(f"{where} has shape {arr.shape}, expected ({n}, {c}) (clips x classes)")
                    if kind == "scores":
                        arr = arr.astype(np.float32, copy=False)
                        if not np.isfinite(arr).all():
                            bad = int((~np.isfinite(arr)).sum())
                            raise StrategyError(f"{where} contains {bad} NaN/inf value(s)")
                    else:
                        arr = arr.astype(bool, copy=False)
                    per_mod[mod] = arr
        both = set(self.scores) & set(self.label_sets)
        if both:
            raise StrategyError(f"model name(s) {sorted(both)} used for both scores and label sets")
        if self.original is not None:
            self.original = np.asarray(self.original, dtype=bool)
            if self.original.shape != (n, c):
                raise StrategyError(f"original labels have shape {self.original.shape}, expected ({n}, {c})")


def labels_to_matrix(
    video_ids: list[str], class_names: list[str], labels: Mapping[str, Iterable[str]], *, what: str = "labels"
) -> np.ndarray:
    """{video_id: [class names]} -> bool [n, C]; unknown class names raise StrategyError."""
    row = {v: i for i, v in enumerate(video_ids)}
    col = {c: j for j, c in enumerate(class_names)}
    out = np.zeros((len(video_ids), len(class_names)), dtype=bool)
    unknown: dict[str, int] = {}
    for vid, names in labels.items():
        i = row.get(vid)
        if i is None:
            continue
        for name in names:
            j = col.get(name)
            if j is None:
                unknown[name] = unknown.get(name, 0) + 1
            else:
                out[i, j] = True
    if unknown:
        listing = ", ".join(f"{k!r} ({v}x)" for k, v in sorted(unknown.items()))
        raise StrategyError(f"{what}: unknown class name(s): {listing}")
    return out


# --------------------------------------------------------------------------------------------
# Rank cache (shared by apply and the tuner)
# --------------------------------------------------------------------------------------------

_NOT_RANKED = np.iinfo(np.int32).max


def within_clip_ranks(scores: np.ndarray) -> np.ndarray:
    """rank[i, j] = position of class j in clip i's descending score order (0 = best)."""
    n, c = scores.shape
    order = np.argsort(-scores, axis=1, kind="stable")
    dtype = np.int16 if c < np.iinfo(np.int16).max else np.int32
    ranks = np.empty((n, c), dtype=dtype)
    np.put_along_axis(ranks, order, np.broadcast_to(np.arange(c, dtype=dtype), (n, c)), axis=1)
    return ranks


def global_ranks(scores: np.ndarray, max_n: int) -> np.ndarray:
    """rank of every (clip, class) score across the whole matrix, for the best ``max_n``
    entries; every other entry gets a rank larger than any possible ``n``."""
    flat = scores.ravel()
    out = np.full(flat.shape, _NOT_RANKED, dtype=np.int32)
    max_n = min(int(max_n), flat.size)
    if max_n <= 0:
        return out.reshape(scores.shape)
    thr = np.partition(flat, flat.size - max_n)[flat.size - max_n]
    cand = np.flatnonzero(flat >= thr)
    # descending score, then ascending flat position
    order = np.lexsort((cand, -flat[cand]))[:max_n]
    out[cand[order]] = np.arange(order.size, dtype=np.int32)
    return out.reshape(scores.shape)


class RankCache:
    """Ranks of every (model, modality) score matrix, computed once and reused."""

    def __init__(self, preds: Predictions, max_global_n: int = 0):
        self.preds = preds
        self._within: dict[tuple[str, str], np.ndarray] = {}
        self._global: dict[tuple[str, str], np.ndarray] = {}
        self._global_n = 0
        self.ensure_global(max_global_n)

    def within(self, model: str, mod: str) -> np.ndarray:
        key = (model, mod)
        if key not in self._within:
            self._within[key] = within_clip_ranks(self.preds.scores[model][mod])
        return self._within[key]

    def ensure_global(self, n: int) -> None:
        if n > self._global_n:
            self._global.clear()
            self._global_n = int(n)

    def global_(self, model: str, mod: str, n: int) -> np.ndarray:
        self.ensure_global(n)
        key = (model, mod)
        if key not in self._global:
            self._global[key] = global_ranks(self.preds.scores[model][mod], self._global_n)
        return self._global[key]


# --------------------------------------------------------------------------------------------
# Applying a strategy
# --------------------------------------------------------------------------------------------

Source = tuple[str, str | None, str | None]  # (rule, model, modality)


@dataclass
class ProposalResult:
    video_ids: list[str]
    class_names: list[str]
    proposed: np.ndarray  # bool [n, C]
    rule_masks: dict[str, np.ndarray]  # rule -> bool [n, C] (what the rule alone proposes)
    sources: list[Source] = field(default_factory=list)
    source_masks: list[np.ndarray] = field(default_factory=list)

    def sizes(self) -> np.ndarray:
        return self.proposed.sum(axis=1)

    def proposals_for(self, video_id: str) -> dict[str, list[dict[str, Any]]]:
        i = self.video_ids.index(video_id)
        return {name: prov for _, name, prov in self._iter_rows(np.array([i]))}

    def records(self) -> Iterator[tuple[str, str, list[dict[str, Any]]]]:
        """(video_id, class name, provenance) for every proposal, row-major."""
        yield from self._iter_rows(None)

    def records_json(self) -> Iterator[tuple[str, str, str]]:
        """(video_id, class name, provenance as JSON text) for every proposal, row-major, like records(); each
        distinct provenance (a set of sources) is encoded once, not once per proposal (millions at 150k clips)."""
        if not self.sources:
            raise StrategyError("provenance was not kept (apply_strategy(keep_sources=False))")
        if len(self.sources) > 62:  # the source set no longer fits a 64-bit mask
            for vid, name, prov in self.records():
                yield vid, name, json.dumps(prov)
            return
        prov_of_source = [{"rule": r, "model": m, "modality": mod} for r, m, mod in self.sources]
        texts: dict[int, str] = {}
        for start in range(0, self.proposed.shape[0], 20000):  # a block of clips at a time: bounded index arrays
            ii, jj = np.nonzero(self.proposed[start : start + 20000])
            ii += start
            code = np.zeros(ii.size, dtype=np.int64)
            for s, m in enumerate(self.source_masks):
                code |= m[ii, jj].astype(np.int64) << s
            for i, j, c in zip(ii.tolist(), jj.tolist(), code.tolist()):
                text = texts.get(c)
                if text is None:
                    text = texts[c] = json.dumps([prov_of_source[s] for s in range(len(prov_of_source)) if c >> s & 1])
                yield self.video_ids[i], self.class_names[j], text

    def provenance_groups(self, cache: dict | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
        """``(rows, cols, group, texts)``: every proposal's clip row and class column (row-major, like records()),
        and the index in ``texts`` of its provenance as JSON text (the text records_json() gives it), each distinct
        provenance encoded once (``cache``: a dict kept across calls with the same sources, so that a text is
        encoded once for all blocks of a set). For writers that handle arrays instead of one tuple per proposal."""
        if not self.sources:
            raise StrategyError("provenance was not kept (apply_strategy(keep_sources=False))")
        cache = {} if cache is None else cache
        ii, jj = np.nonzero(self.proposed)
        if ii.size == 0:
            return ii, jj, np.zeros(0, dtype=np.intp), []
        prov_of_source = [{"rule": r, "model": m, "modality": mod} for r, m, mod in self.sources]
        if len(self.sources) <= 62:  # the set of sources as the bits of one integer
            code = np.zeros(ii.size, dtype=np.int64)
            for s, m in enumerate(self.source_masks):
                code |= m[ii, jj].astype(np.int64) << s
        else:  # the set of sources as packed bytes
            hits = np.ascontiguousarray(np.packbits(np.stack([m[ii, jj] for m in self.source_masks], axis=1), axis=1))
            code = hits.view(np.dtype((np.void, hits.shape[1]))).ravel()
        order = np.argsort(code, kind="stable")
        ordered = code[order]
        new = np.ones(ii.size, dtype=bool)
        new[1:] = ordered[1:] != ordered[:-1]
        group = np.empty(ii.size, dtype=np.intp)
        group[order] = np.cumsum(new) - 1
        texts = []
        n_src = len(self.sources)
        piece = [json.dumps(p) for p in prov_of_source]
        for key, at in zip(ordered[new].tolist(), order[new].tolist()):
            text = cache.get(key)
            if text is None:
                if isinstance(key, int):
                    srcs = [s for s in range(n_src) if key >> s & 1]
                else:
                    srcs = [s for s, m in enumerate(self.source_masks) if m[ii[at], jj[at]]]
                text = cache[key] = "[" + ", ".join(piece[s] for s in srcs) + "]"  # = json.dumps of the list
            texts.append(text)
        return ii, jj, group, texts

    def _iter_rows(self, rows: np.ndarray | None):
        if not self.sources:
            raise StrategyError("provenance was not kept (apply_strategy(keep_sources=False))")
        proposed = self.proposed if rows is None else self.proposed[rows]
        ii, jj = np.nonzero(proposed)
        if rows is not None:
            ii = rows[ii]
        hits = np.stack([m[ii, jj] for m in self.source_masks], axis=0)  # [S, P]
        prov_of_source = [{"rule": r, "model": m, "modality": mod} for r, m, mod in self.sources]
        for p in range(ii.size):
            prov = [prov_of_source[s] for s in np.flatnonzero(hits[:, p])]
            yield self.video_ids[ii[p]], self.class_names[jj[p]], [dict(x) for x in prov]


def apply_strategy(
    strategy: Strategy, preds: Predictions, *, cache: RankCache | None = None, keep_sources: bool = True
) -> ProposalResult:
    """Apply ``strategy`` to all clips of ``preds`` at once (vectorised)."""
    strategy.validate()
    n, c = preds.n_clips, len(preds.class_names)
    cons = strategy.consensus
    if cache is None:
        cache = RankCache(preds, cons.global_n)
    sources: list[Source] = []
    source_masks: list[np.ndarray] = []
    rule_masks: dict[str, np.ndarray] = {}

    def add(rule: str, model: str | None, mod: str | None, mask: np.ndarray) -> None:
        if rule in rule_masks:
            rule_masks[rule] |= mask
        else:
            rule_masks[rule] = mask.copy()
        if keep_sources:
            sources.append((rule, model, mod))
            source_masks.append(mask)

    def covered(model: str, mask: np.ndarray) -> np.ndarray:
        cov = preds.coverage.get(model)
        return mask if cov is None else mask & cov[:, None]

    unknown_models = sorted(set(strategy.topk_per_model) - set(preds.scores))
    if unknown_models:
        raise StrategyError(
            f"topk_per_model names model(s) {unknown_models} without scores; models with scores: {sorted(preds.scores)}"
        )

    # original label
    if strategy.original_label and preds.original is not None:
        add("original", None, None, preds.original)

    # top-k per model and modality
    for model, per_mod in preds.scores.items():
        for mod in MODALITIES:
            if mod not in per_mod:
                continue
            k = strategy.k_for(model, mod)
            if k <= 0:
                continue
            add("topk", model, mod, covered(model, cache.within(model, mod) < k))

    # label-set models propose all their labels
    if strategy.label_set_models:
        for model, per_mod in preds.label_sets.items():
            for mod, mask in per_mod.items():
                add("label_set", model, mod, mask)

    # consensus pool
    if cons.models is None:
        cmodels = preds.models
    else:
        missing = sorted(set(cons.models) - set(preds.models))
        if missing:
            raise StrategyError(f"consensus.models names unknown model(s) {missing}; known: {preds.models}")
        cmodels = list(cons.models)
    pools: dict[tuple[str, str], np.ndarray] = {}
    count = np.zeros((n, c), dtype=np.uint8)
    for model in cmodels:
        model_pool = np.zeros((n, c), dtype=bool)
        for mod in cons.modalities:
            if model in preds.scores:
                if mod not in preds.scores[model]:
                    continue
                pool = np.zeros((n, c), dtype=bool)
                if cons.k > 0:
                    pool |= cache.within(model, mod) < cons.k
                if cons.global_n > 0:
                    pool |= cache.global_(model, mod, cons.global_n) < cons.global_n
                pool = covered(model, pool)
            else:
                if mod not in preds.label_sets[model]:
                    continue
                pool = preds.label_sets[model][mod]
            model_pool |= pool
            if keep_sources:
                pools[(model, mod)] = pool
        count += model_pool
    consensus = count >= cons.min_models
    if keep_sources:
        for (model, mod), pool in pools.items():
            add("consensus", model, mod, pool & consensus)
    else:
        add("consensus", None, None, consensus)

    # common classes
    if strategy.common_classes:
        cols = [preds.class_index(name) for name in strategy.common_classes]
        mask = np.zeros((n, c), dtype=bool)
        mask[:, cols] = True
        add("common", None, None, mask)

    proposed = np.zeros((n, c), dtype=bool)
    for mask in rule_masks.values():
        proposed |= mask
    return ProposalResult(
        video_ids=list(preds.video_ids),
        class_names=list(preds.class_names),
        proposed=proposed,
        rule_masks=rule_masks,
        sources=sources,
        source_masks=source_masks,
    )


# --------------------------------------------------------------------------------------------
# Applying a strategy a block of clips at a time (bounded memory, streamed storage)
# --------------------------------------------------------------------------------------------

Rows = Callable[[int, int], np.ndarray]  # (start, stop) -> the rows [start, stop) of one matrix


@dataclass
class PredictionRows(_ClipsAndClasses):
    """Predictions read a block of clips at a time: every matrix of :class:`Predictions` given as a function
    ``(start, stop) -> rows`` (scores float32, label sets and original labels bool, [stop - start, C]), so that
    no matrix of the whole dataset has to be held. ``coverage`` as in :class:`Predictions`."""

    class_names: list[str]
    video_ids: list[str]
    scores: dict[str, dict[str, Rows]] = field(default_factory=dict)
    label_sets: dict[str, dict[str, Rows]] = field(default_factory=dict)
    original: Rows | None = None
    coverage: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def from_predictions(cls, preds: Predictions) -> "PredictionRows":
        def rows(arr: np.ndarray) -> Rows:
            return lambda start, stop: arr[start:stop]

        return cls(
            class_names=list(preds.class_names),
            video_ids=list(preds.video_ids),
            scores={m: {mod: rows(a) for mod, a in per.items()} for m, per in preds.scores.items()},
            label_sets={m: {mod: rows(a) for mod, a in per.items()} for m, per in preds.label_sets.items()},
            original=None if preds.original is None else rows(preds.original),
            coverage=dict(preds.coverage),
        )


def topk_mask(scores: np.ndarray, k: int) -> np.ndarray:
    """``within_clip_ranks(scores) < k`` without sorting every row: a clip's k-th best score by partition, then
    the classes above it and, among those equal to it, the lower class indices first (the stable order)."""
    return topk_masks(scores, [k])[k]


def topk_masks(scores: np.ndarray, ks) -> dict[int, np.ndarray]:
    """:func:`topk_mask` for several k from one partition of the rows."""
    n, c = scores.shape
    out: dict[int, np.ndarray] = {}
    cut = sorted({c - k for k in ks if 0 < k < c})
    part = np.partition(scores, cut, axis=1) if cut else None
    for k in ks:
        if k <= 0:
            out[k] = np.zeros((n, c), dtype=bool)
            continue
        if k >= c:
            out[k] = np.ones((n, c), dtype=bool)
            continue
        kth = part[:, c - k : c - k + 1]
        mask = scores > kth
        ties = scores == kth
        quota = k - mask.sum(axis=1, dtype=np.int32)
        over = np.flatnonzero(ties.sum(axis=1, dtype=np.int32) > quota)  # clips with more ties than places left
        if over.size:
            ties[over] &= np.cumsum(ties[over], axis=1, dtype=np.int32) <= quota[over, None]
        mask |= ties
        out[k] = mask
    return out


@dataclass
class GlobalCut:
    """Which entries of one score matrix are among its ``n`` best in the global order (descending score, then
    row-major position): every score above ``threshold``, and the first ``ties`` entries equal to it (row-major).
    ``threshold`` None: the matrix has at most ``n`` entries, all are in."""

    threshold: np.float32 | None
    ties: int

    @classmethod
    def find(cls, rows: Rows, n_rows: int, n: int, chunk: int, check: str = "") -> "GlobalCut":
        """One pass over the matrix a block at a time, keeping the ``n`` largest scores seen; ``check``: raise
        StrategyError naming it on NaN/inf."""
        top = np.empty(0, dtype=np.float32)
        size = 0
        for start in range(0, n_rows, chunk):
            block = np.asarray(rows(start, min(start + chunk, n_rows)), dtype=np.float32)
            if check and not np.isfinite(block).all():
                raise StrategyError(f"{check} contains {int((~np.isfinite(block)).sum())} NaN/inf value(s)")
            flat = block.ravel()
            size += flat.size
            if n <= 0:
                continue
            if top.size >= n:
                flat = flat[flat > top.min()]  # an entry equal to the n-th best changes nothing
            if flat.size:
                top = np.concatenate([top, flat])
                if top.size > n:
                    top = np.partition(top, top.size - n)[top.size - n :]
        if size <= n or n <= 0:  # all in (n <= 0: no cut; the pass only checked the scores)
            return cls(None, 0)
        thr = top.min()
        return cls(thr, int(n - (top > thr).sum()))

    def mask(self, block: np.ndarray, ties_left: int) -> tuple[np.ndarray, int]:
        """The in-the-top-n mask of the next block in row-major order and the tie quota left after it (start
        with ``self.ties``)."""
        if self.threshold is None:
            return np.ones(block.shape, dtype=bool), ties_left
        mask = block > self.threshold
        if ties_left > 0:
            eq = np.flatnonzero(block == self.threshold)[:ties_left]
            mask.ravel()[eq] = True
            ties_left -= eq.size
        return mask, ties_left


class ChunkedStrategy:
    """A strategy applied to :class:`PredictionRows` a block of clips at a time, with the same proposals and
    provenance as :func:`apply_strategy` on the whole dataset. Construction checks everything
    (:class:`StrategyError`) and makes one pass over the score matrices for the consensus pool's global cut;
    :meth:`chunks` then yields ``(start, ProposalResult of clips [start, start + len))`` block by block."""

    def __init__(self, strategy: Strategy, preds: PredictionRows, *, chunk: int = 4096):
        strategy.validate()
        if chunk < 1:
            raise StrategyError(f"chunk size must be >= 1, got {chunk}")
        self.strategy, self.preds, self.chunk = strategy, preds, int(chunk)
        unknown_models = sorted(set(strategy.topk_per_model) - set(preds.scores))
        if unknown_models:
            raise StrategyError(
                f"topk_per_model names model(s) {unknown_models} without scores; models with scores: "
                f"{sorted(preds.scores)}"
            )
        cons = strategy.consensus
        if cons.models is None:
            self.cmodels = preds.models
        else:
            missing = sorted(set(cons.models) - set(preds.models))
            if missing:
                raise StrategyError(f"consensus.models names unknown model(s) {missing}; known: {preds.models}")
            self.cmodels = list(cons.models)
        self.common_cols = [preds.class_index(name) for name in strategy.common_classes]
        n = preds.n_clips
        wanted = {(m, mod) for m in self.cmodels if m in preds.scores for mod in cons.modalities}
        self.cuts: dict[tuple[str, str], GlobalCut] = {}
        for model, per_mod in preds.scores.items():  # every score matrix is checked, the cut where it is used
            for mod, rows in per_mod.items():
                use = cons.global_n > 0 and (model, mod) in wanted
                cut = GlobalCut.find(
                    rows, n, cons.global_n if use else 0, self.chunk, check=f"scores[{model!r}][{mod!r}]"
                )
                if use:
                    self.cuts[(model, mod)] = cut

    def chunks(self) -> Iterator[tuple[int, ProposalResult]]:
        ties_left = {key: cut.ties for key, cut in self.cuts.items()}  # the global cut's tie quota runs on
        for start in range(0, self.preds.n_clips, self.chunk):
            yield start, self._block(start, min(start + self.chunk, self.preds.n_clips), ties_left)

    def _block(self, start: int, stop: int, ties_left: dict[tuple[str, str], int]) -> ProposalResult:
        """The rules of :func:`apply_strategy`, in the same order, on clips [start, stop)."""
        preds, strategy, cons = self.preds, self.strategy, self.strategy.consensus
        rows, c = stop - start, len(preds.class_names)
        sources: list[Source] = []
        source_masks: list[np.ndarray] = []
        rule_masks: dict[str, np.ndarray] = {}

        def add(rule: str, model: str | None, mod: str | None, mask: np.ndarray) -> None:
            if rule in rule_masks:
                rule_masks[rule] |= mask
            else:
                rule_masks[rule] = mask.copy()
            sources.append((rule, model, mod))
            source_masks.append(mask)

        def covered(model: str, mask: np.ndarray) -> np.ndarray:
            cov = preds.coverage.get(model)
            return mask if cov is None else mask & cov[start:stop, None]

        scores: dict[tuple[str, str], np.ndarray] = {}
        tops: dict[tuple[str, str], dict[int, np.ndarray]] = {}

        def block(model: str, mod: str) -> np.ndarray:
            if (model, mod) not in scores:
                scores[(model, mod)] = np.asarray(preds.scores[model][mod](start, stop), dtype=np.float32)
            return scores[(model, mod)]

        def top(model: str, mod: str, k: int) -> np.ndarray:
            """The top-k mask; the top-k rule's and the pool's k of one matrix from one partition."""
            if (model, mod) not in tops:
                tops[(model, mod)] = topk_masks(block(model, mod), sorted({strategy.k_for(model, mod), cons.k}))
            return tops[(model, mod)][k]

        if strategy.original_label and preds.original is not None:
            add("original", None, None, np.asarray(preds.original(start, stop), dtype=bool))
        for model, per_mod in preds.scores.items():
            for mod in MODALITIES:
                if mod not in per_mod:
                    continue
                k = strategy.k_for(model, mod)
                if k <= 0:
                    continue
                add("topk", model, mod, covered(model, top(model, mod, k)))
        label_blocks = {
            (model, mod): np.asarray(rows_of(start, stop), dtype=bool)
            for model, per_mod in preds.label_sets.items()
            for mod, rows_of in per_mod.items()
        }
        if strategy.label_set_models:
            for (model, mod), mask in label_blocks.items():
                add("label_set", model, mod, mask)
        pools: dict[tuple[str, str], np.ndarray] = {}
        count = np.zeros((rows, c), dtype=np.uint8)
        for model in self.cmodels:
            model_pool = np.zeros((rows, c), dtype=bool)
            for mod in cons.modalities:
                if model in preds.scores:
                    if mod not in preds.scores[model]:
                        continue
                    pool = np.zeros((rows, c), dtype=bool)
                    if cons.k > 0:
                        pool |= top(model, mod, cons.k)
                    if cons.global_n > 0:
                        in_cut, ties_left[(model, mod)] = self.cuts[(model, mod)].mask(
                            block(model, mod), ties_left[(model, mod)]
                        )
                        pool |= in_cut
                    pool = covered(model, pool)
                else:
                    if mod not in preds.label_sets[model]:
                        continue
                    pool = label_blocks[(model, mod)]
                model_pool |= pool
                pools[(model, mod)] = pool
            count += model_pool
        consensus = count >= cons.min_models
        for (model, mod), pool in pools.items():
            add("consensus", model, mod, pool & consensus)
        if self.common_cols:
            mask = np.zeros((rows, c), dtype=bool)
            mask[:, self.common_cols] = True
            add("common", None, None, mask)
        proposed = np.zeros((rows, c), dtype=bool)
        for mask in rule_masks.values():
            proposed |= mask
        return ProposalResult(
            video_ids=preds.video_ids[start:stop],
            class_names=preds.class_names,
            proposed=proposed,
            rule_masks=rule_masks,
            sources=sources,
            source_masks=source_masks,
        )


def apply_strategy_chunked(strategy: Strategy, preds: PredictionRows | Predictions, *, chunk: int = 4096):
    """:class:`ChunkedStrategy`'s blocks put together into one :class:`ProposalResult` (for tests and small data;
    the proposal-set store consumes the blocks one at a time)."""
    if isinstance(preds, Predictions):
        preds = PredictionRows.from_predictions(preds)
    parts = [res for _, res in ChunkedStrategy(strategy, preds, chunk=chunk).chunks()]
    c = len(preds.class_names)
    if not parts:
        empty = np.zeros((0, c), dtype=bool)
        return ProposalResult([], list(preds.class_names), empty, {})
    first = parts[0]
    return ProposalResult(
        video_ids=list(preds.video_ids),
        class_names=list(preds.class_names),
        proposed=np.concatenate([p.proposed for p in parts]),
        rule_masks={r: np.concatenate([p.rule_masks[r] for p in parts]) for r in first.rule_masks},
        sources=list(first.sources),
        source_masks=[np.concatenate([p.source_masks[s] for p in parts]) for s in range(len(first.sources))],
    )
