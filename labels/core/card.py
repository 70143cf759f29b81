"""The quality card of a release (pure, no Django): how well a merge method reproduces the gold standard, measured
fairly. Every gold clip is merged *as if it were not gold*:

- annotator quality (the catch-trial F1 that ranks annotators for ``majority`` and weighs them for ``weighted``) is
  computed without the held-out clip's gold labels (``worker_quality`` with ``exclude_clips``);
- Dawid–Skene style methods clamp only the other gold clips (``clamp_clips``);
- the annotations of the people who made the gold (in-house experts, ``exclude_ann``) are not votes on a held-out
  clip.

Majority and weighted hold out one clip at a time (leave-one-out); the EM methods are refitted once per fold and
hold out one of ``em_folds`` folds of gold clips at a time (a stricter leave-out). Figures: micro-F1 (TP/FP/FN
pooled over every (clip, class, audible|visible) atom), macro-F1 (mean over classes of the per-class F1, a class
counting when gold or the merge has it), the same per modality, per meta label (against the experts' majority on
the gold clips, when there is one) and per class, with bootstrap 95 % intervals over gold clips (fixed seed).
"""

from __future__ import annotations

from dataclasses import replace
from statistics import NormalDist

import numpy as np

from catalog.core.vocabulary import META_LABELS
from labels.core.merge import EM_METHODS, METHODS, merge
from labels.core.quality import catch_counts, worker_quality_from_gold
from labels.core.votes import MOD_A, MOD_V, Votes, _as_code, duplicate_votes, select_annotations

WORKER_QUALITY_DEFINITION = (
    "mean catch-trial F1 of the annotator's approved assignments in this dataset (F1 pooled over each assignment's "
    "catch clips, as live scoring does), the held-out gold clips left out"
)


def worker_quality(votes: Votes, gold, catch_clips=None, exclude_clips=None, counts=None) -> np.ndarray:
    """The one annotator-quality definition releases and comparisons use (WORKER_QUALITY_DEFINITION); an annotator
    with no scored catch clip keeps the quality stored on `votes` (NaN if none)."""
    if not gold:
        return votes.worker_quality.copy()
    computed = worker_quality_from_gold(
        votes, gold, exclude_clips=exclude_clips, catch_clips=catch_clips, counts=counts
    )
    return np.where(np.isnan(computed), votes.worker_quality, computed)


def _folds(clips: list, folds: int | None, seed: int) -> list[list[int]]:
    if not folds or folds >= len(clips):
        return [[c] for c in clips]
    perm = np.random.default_rng(seed).permutation(len(clips))
    return [sorted(clips[i] for i in perm[f::folds]) for f in range(folds)]


def leave_out_predictions(
    votes: Votes,
    gold: dict,
    method: str,
    *,
    k: int = 3,
    params: dict | None = None,
    catch_clips=None,
    exclude_ann=None,
    folds: int | None = None,
    em_folds: int | None = 10,
    em_sample: int | None = None,
    seed: int = 0,
    cap_votes="auto",
) -> dict:
    """Merge every gold clip with >= k usable annotations without its own gold (see the module doc). Returns
    {"labels": {clip: {class: code}}, "meta": {clip: [bool]*3}, "clips": [...], "folds": n, "skipped": n,
    "votes_per_gold_clip": cap}.

    cap_votes: a gold clip is a catch trial in many batches, so it has far more annotations than a regular clip;
    merged from all of them it would look better than the release's clips are. "auto" (default): merge each held-out
    gold clip from its first n annotations (one per annotator, submission order), n = the median number of
    annotations of the non-gold clips (at least k); None: all of them; an int: that many."""
    params = {key: v for key, v in (params or {}).items() if key not in ("k", "worker_quality", "clamp_clips")}
    quality_votes = votes
    keep = ~duplicate_votes(votes)
    if exclude_ann is not None:
        keep &= ~np.asarray(exclude_ann, bool)
    n_ann = np.bincount(votes.ann_clip[keep], minlength=votes.n_clips)
    is_gold_clip = np.zeros(votes.n_clips, dtype=bool)
    is_gold_clip[list(gold)] = True
    cap = cap_votes
    if cap == "auto":
        regular = n_ann[(n_ann > 0) & ~is_gold_clip]
        cap = max(int(np.median(regular)), int(k)) if len(regular) else None
    scored_gold = sorted(gold)
    clips = [c for c in scored_gold if n_ann[c] >= k]
    out = {
        "labels": {},
        "meta": {},
        "clips": clips,
        "skipped": len(scored_gold) - len(clips),
        "votes_per_gold_clip": cap,
    }
    if not clips:
        out["folds"] = 0
        return out
    if method in EM_METHODS:
        is_gold = np.zeros(votes.n_clips, dtype=bool)
        is_gold[list(gold)] = True
        others = np.flatnonzero((n_ann > 0) & ~is_gold)
        if em_sample is not None and len(others) > em_sample:
            mask = is_gold.copy()
            mask[np.random.default_rng(seed).choice(others, em_sample, replace=False)] = True
            # the sampled clips' usable annotations only (the same arrays as selecting all usable annotations and
            # then the sample, without a release-sized copy of the ticks in between)
            fit_votes = select_annotations(votes, keep & mask[votes.ann_clip]).subset(mask)
        else:
            fit_votes = select_annotations(votes, keep) if not keep.all() else votes
        fold_list = _folds(clips, em_folds, seed)
        for fold in fold_list:
            held = set(fold)
            res = merge(
                _capped(fit_votes, fold, cap),
                method,
                gold=gold,
                k=k,
                clamp_clips=[c for c in gold if c not in held],
                **params,
            )
            _collect(res, fold, out)
    else:
        gold_mask = np.zeros(votes.n_clips, dtype=bool)
        gold_mask[list(gold)] = True
        quality_votes = votes.subset(gold_mask)
        counts = catch_counts(quality_votes, gold, catch_clips)
        on_eval = np.zeros(votes.n_clips, dtype=bool)
        on_eval[clips] = True
        # only the scored gold clips' usable annotations, on clip indices 0..len(clips)-1: a held-out clip's merge
        # depends only on its own votes and the annotators' quality, so the folds need no release-sized copy or table
        eval_gold_votes = _compact(
            _capped(select_annotations(votes, keep & on_eval[votes.ann_clip]).subset(on_eval), clips, cap), clips
        )
        position = {c: i for i, c in enumerate(clips)}
        clip_ids = np.asarray(clips, dtype=np.int64)
        # an annotator scored on this dataset's gold is ranked by its held-out F1 only (NaN when the held-out clips
        # were all it had: never the quality stored on the votes, which a release has already computed from all the
        # gold); one never scored here keeps the stored quality (from elsewhere, free of this gold)
        scored_here = ~np.isnan(worker_quality_from_gold(quality_votes, gold, catch_clips=catch_clips, counts=counts))
        fold_list = _folds(clips, folds, seed)
        for fold in fold_list:
            held_out = worker_quality_from_gold(
                quality_votes, gold, exclude_clips=fold, catch_clips=catch_clips, counts=counts
            )
            q = np.where(scored_here, held_out, votes.worker_quality)
            mask = np.zeros(len(clips), dtype=bool)
            mask[[position[c] for c in fold]] = True
            res = merge(eval_gold_votes.subset(mask), method, k=k, worker_quality=q, **params)
            _collect(res, fold, out, clip_ids)
    out["folds"] = len(fold_list)
    return out


def _capped(votes: Votes, clips, cap) -> Votes:
    """Votes where each of `clips` keeps only its first `cap` annotations (load order); None: unchanged."""
    if cap is None:
        return votes
    on = np.zeros(votes.n_clips, dtype=bool)
    on[list(clips)] = True
    n = len(votes.ann_clip)
    order = np.lexsort((np.arange(n), votes.ann_clip))
    sorted_clip = votes.ann_clip[order]
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - np.searchsorted(sorted_clip, sorted_clip, side="left")
    drop = on[votes.ann_clip] & (rank >= cap)
    return select_annotations(votes, ~drop) if drop.any() else votes


def _compact(votes: Votes, clips: list) -> Votes:
    """`votes` (annotations and proposals of `clips` only) with clip indices renumbered 0..len(clips)-1 in the order
    of the sorted `clips` (order kept, so every per-clip sum adds in the same order)."""
    position = np.full(votes.n_clips, -1, dtype=np.int64)
    position[clips] = np.arange(len(clips))
    return replace(
        votes,
        n_clips=len(clips),
        ann_clip=position[votes.ann_clip],
        cand_clip=position[votes.cand_clip],
    )


def _collect(res, fold, out, clip_ids=None):
    """Store the merge of `fold` (res on compact clip indices when clip_ids maps them back)."""
    sets = res.label_sets(clip_ids=None if clip_ids is None else clip_ids.tolist())
    ids = res.clips.tolist() if clip_ids is None else clip_ids[res.clips].tolist()
    meta = {int(c): row for c, row in zip(ids, res.meta.tolist())}
    for c in fold:
        out["labels"][c] = {k: _as_code(m) for k, m in sets.get(c, {}).items()}
        out["meta"][c] = meta.get(c, [False] * len(META_LABELS))


def _f1(tp, fp, fn):
    tp, fp, fn = (np.asarray(x, dtype=float) for x in (tp, fp, fn))
    denom = 2 * tp + fp + fn
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1e-12), np.nan)


def _counts(pred: dict, gold: dict, clips: list, bits=(MOD_A, MOD_V)):
    """Per (clip, class) TP/FP/FN matrices [n_clips, n_seen_classes] over the given modality bits; classes seen in
    gold or predictions of these clips."""
    classes = sorted({k for c in clips for k in gold[c]} | {k for c in clips for k in pred.get(c, {})})
    col = {k: j for j, k in enumerate(classes)}
    tp = np.zeros((len(clips), len(classes)))
    fp = np.zeros_like(tp)
    fn = np.zeros_like(tp)
    for i, c in enumerate(clips):
        g, p = gold[c], pred.get(c, {})
        for k in set(g) | set(p):
            gm, pm = _as_code(g.get(k)), _as_code(p.get(k))
            for bit in bits:
                gb, pb = bool(gm & bit), bool(pm & bit)
                tp[i, col[k]] += gb and pb
                fp[i, col[k]] += pb and not gb
                fn[i, col[k]] += gb and not pb
    return classes, tp, fp, fn


def _micro_macro(t, f, n):
    """(micro, macro) from per-class counts [..., classes] (summed over clips)."""
    micro = _f1(t.sum(axis=-1), f.sum(axis=-1), n.sum(axis=-1))
    per_class = _f1(t, f, n)
    with np.errstate(all="ignore"):
        counted = ~np.isnan(per_class)
        macro = np.where(counted.any(axis=-1), np.nansum(per_class, axis=-1) / np.maximum(counted.sum(axis=-1), 1), 0.0)
    return np.nan_to_num(micro), macro


def _interval(samples, point: float) -> list[float]:
    """Bias-corrected percentile bootstrap 95 % interval (Efron's BC): macro-F1 over resampled clips is biased
    downwards (rare classes drop out or come back with one example), so the plain percentile interval can sit below
    the figure itself; BC shifts the percentiles by the share of draws below the point estimate."""
    samples = np.asarray(samples, dtype=float)
    below = (np.sum(samples < point) + 0.5 * np.sum(samples == point)) / len(samples)
    nd = NormalDist()
    z0 = nd.inv_cdf(min(max(below, 1e-6), 1 - 1e-6))
    q = [100 * nd.cdf(2 * z0 + z) for z in (nd.inv_cdf(0.025), nd.inv_cdf(0.975))]
    lo, hi = np.percentile(samples, q)
    return [round(float(lo), 4), round(float(hi), 4)]


def score_predictions(
    pred: dict, gold: dict, clips: list, *, pred_meta=None, gold_meta=None, class_names=None, n_boot=1000, seed=0
) -> dict:
    """The card's figures for predictions on gold clips: micro/macro F1 overall and per modality with bootstrap 95 %
    intervals (clips resampled with replacement, `n_boot` draws, fixed `seed`), per meta label and per class."""
    rng = np.random.default_rng(seed)
    weights = (
        rng.multinomial(len(clips), np.full(len(clips), 1 / len(clips)), size=n_boot).astype(float)
        if clips and n_boot > 0
        else None
    )

    def block(bits):
        classes, tp, fp, fn = _counts(pred, gold, clips, bits)
        micro, macro = _micro_macro(tp.sum(axis=0), fp.sum(axis=0), fn.sum(axis=0))
        entry = {"micro_f1": round(float(micro), 4), "macro_f1": round(float(macro), 4)}
        if weights is not None and len(classes):
            # a bootstrap draw counts each clip as often as it was drawn: per-class sums are weights @ counts
            b_micro, b_macro = _micro_macro(weights @ tp, weights @ fp, weights @ fn)
            entry["micro_f1_ci95"] = _interval(b_micro, float(micro))
            entry["macro_f1_ci95"] = _interval(b_macro, float(macro))
        return entry, classes, tp, fp, fn

    overall, classes, tp, fp, fn = block((MOD_A, MOD_V))
    card = {
        "clips": len(clips),
        **overall,
        "bootstrap": {"samples": int(n_boot), "seed": int(seed), "unit": "gold clip"},
    }
    card["modality"] = {"audible": block((MOD_A,))[0], "visible": block((MOD_V,))[0]}
    per_class = {}
    t, f, n = tp.sum(axis=0), fp.sum(axis=0), fn.sum(axis=0)
    for j, k in enumerate(classes):
        f1 = _f1(t[j], f[j], n[j])
        name = class_names[k] if class_names is not None else k
        per_class[name] = {
            "f1": None if np.isnan(f1) else round(float(f1), 4),
            "support": int(t[j] + n[j]),
            "tp": int(t[j]),
            "fp": int(f[j]),
            "fn": int(n[j]),
        }
    card["per_class"] = per_class
    meta = {}
    known = [c for c in clips if gold_meta and c in gold_meta]
    for j, m in enumerate(META_LABELS):
        if not known or pred_meta is None:
            meta[m] = None
            continue
        g = np.array([bool(gold_meta[c][j]) for c in known])
        p = np.array([bool(pred_meta.get(c, [False] * len(META_LABELS))[j]) for c in known])
        f1 = _f1((g & p).sum(), (p & ~g).sum(), (g & ~p).sum())
        meta[m] = {
            "f1": None if np.isnan(f1) else round(float(f1), 4),
            "accuracy": round(float((g == p).mean()), 4),
            "support": int(g.sum()),
            "clips": len(known),
        }
    card["meta"] = meta
    return card


def quality_card(
    votes: Votes,
    gold: dict,
    method: str,
    *,
    k: int = 3,
    params: dict | None = None,
    catch_clips=None,
    exclude_ann=None,
    gold_meta=None,
    class_names=None,
    folds: int | None = None,
    em_folds: int | None = 10,
    em_sample: int | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """The release's quality card (JSON-ready): leave-out predictions on the gold clips (leave_out_predictions)
    scored against gold (score_predictions), with how it was measured."""
    if not gold:
        return {"available": False, "reason": "the dataset has no gold labels to measure against"}
    lo = leave_out_predictions(
        votes,
        gold,
        method,
        k=k,
        params=params,
        catch_clips=catch_clips,
        exclude_ann=exclude_ann,
        folds=folds,
        em_folds=em_folds,
        em_sample=em_sample,
        seed=seed,
    )
    if not lo["clips"]:
        return {
            "available": False,
            "reason": f"no gold clip has {k} or more crowd annotations yet ({lo['skipped']} gold clips waiting)",
        }
    gold_codes = {c: {cl: _as_code(m) for cl, m in gold[c].items() if _as_code(m)} for c in lo["clips"]}
    card = score_predictions(
        lo["labels"],
        gold_codes,
        lo["clips"],
        pred_meta=lo["meta"],
        gold_meta=gold_meta,
        class_names=class_names,
        n_boot=n_boot,
        seed=seed,
    )
    em = method in EM_METHODS
    card.update(
        {
            "available": True,
            "method": method,
            "k": int(k),
            "evaluation": (
                f"leave-fold-out: {lo['folds']} folds of gold clips, refitted per fold, the held-out fold not clamped"
                if em and lo["folds"] != len(lo["clips"])
                else "leave-one-out: each gold clip merged without its own gold labels"
            )
            + (
                f"; each gold clip from its first {lo['votes_per_gold_clip']} annotations, as a regular clip has"
                if lo["votes_per_gold_clip"]
                else ""
            ),
            "folds": lo["folds"],
            "gold_clips_skipped": lo["skipped"],
            "votes_per_gold_clip": lo["votes_per_gold_clip"],
            "worker_quality": WORKER_QUALITY_DEFINITION,
        }
    )
    return card


def compare_methods(
    votes: Votes,
    gold: dict,
    methods=None,
    k: int = 3,
    folds: int | None = None,
    seed: int = 0,
    ds_folds: int | None = 10,
    ds_iter: int = 50,
    ds_sample: int | None = 3000,
    catch_clips=None,
    exclude_ann=None,
    gold_meta=None,
    n_boot: int = 1000,
) -> dict:
    """Every method's quality card on the gold clips, measured exactly as releases measure theirs (same leave-out,
    same annotator quality): {method: card + {"n_clips", "folds"}}. ds_folds / ds_sample / ds_iter: folds, sample of
    non-gold clips and iterations for the EM methods (refitted once per fold)."""
    methods = tuple(methods or METHODS)
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"unknown merge method {m!r}; allowed: {', '.join(METHODS)}")
    out = {}
    for m in methods:
        card = quality_card(
            votes,
            gold,
            m,
            k=k,
            params={"n_iter": ds_iter} if m in EM_METHODS else None,
            catch_clips=catch_clips,
            exclude_ann=exclude_ann,
            gold_meta=gold_meta,
            folds=folds,
            em_folds=ds_folds,
            em_sample=ds_sample,
            n_boot=n_boot,
            seed=seed,
        )
        if not card.get("available"):
            card.update({"micro_f1": 0.0, "macro_f1": 0.0, "per_class": {}, "folds": 0, "clips": 0})
        card["n_clips"] = card["clips"]
        out[m] = card
    return out
