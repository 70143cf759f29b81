"""A simulated crowd with known truth, calibrated to public figures, as plain arrays (no Django, no database): for
tests of the quality card and for the merge-method and adaptive-overlap benchmarks (bench/bench_quality.py). The
database-driven simulator that plays real batches through the HIT services is crowd.simulator; this one produces
`Votes` directly, thousands of times faster, so that methods can be compared over many seeds.

Calibration (public figures; see docs/benchmarks.md "Label quality"):
- truth: label sets drawn from the published VGGSounder labels (the `vggsounder` package's CSV: real label
  frequencies, co-occurrences, modality shares A/V/AV and meta labels), or any {clip: {class: "A"|"V"|"AV"}};
- a gold standard of 417 clips; batches of 18 clips + 2 gold catch trials; 3-5 annotators per batch;
- proposals: the true classes (each missed with 10 %) plus distractors, a third of them classes that co-occur with a
  true class elsewhere (the confusable ones), ~20 per clip;
- annotators: sensitivity per modality drawn per worker, audible lower than visible (listening is skipped more
  often than looking), a true audible-only class is marked visible by some, hard atoms (30 %) are missed by most, and
  confusable distractors draw more false alarms; about 3 % of workers are spammers, so that ~6 % of assignments
  score below 0.25 catch F1 (and are rejected and re-posted, as in production); activity is skewed (a few workers
  do many batches, so the same worker meets the same gold clip again: repeated votes occur).
"""

from __future__ import annotations

import csv
import importlib.util
import os
from dataclasses import dataclass, field

import numpy as np

from catalog.core.vocabulary import META_LABELS, catch_scores
from labels.core.overlap import plan_overlap
from labels.core.votes import MOD_A, MOD_V, MODALITY_CODES, MODALITY_NAMES, Votes

REJECT_BELOW = 0.25
HARD_SHARE = 0.3  # share of true atoms that are hard to notice (missed by most annotators)
HARD_FACTOR = 0.3  # sensitivity multiplier on a hard atom
CONFUSER_FACTOR = 6.0  # false-alarm multiplier on a distractor that co-occurs with a true class


def vggsounder_truth(limit: int | None = None, seed: int = 0):
    """(class_names, [(labels {class index: code}, meta (bm, vo, si))]) from the vggsounder package's published CSV;
    clips shuffled with `seed`, at most `limit`."""
    spec = importlib.util.find_spec("vggsounder")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the vggsounder package is not installed (pip install vggsounder)")
    data = os.path.join(list(spec.submodule_search_locations)[0], "data")
    with open(os.path.join(data, "classes.csv"), newline="", encoding="utf-8") as fh:
        names = [row["display_name"] for row in csv.DictReader(fh)]
    index = {n: i for i, n in enumerate(names)}
    clips: dict[str, tuple[dict, tuple]] = {}
    with open(os.path.join(data, "vggsounder.csv"), newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            labels, _meta = clips.setdefault(
                row["video_id"],
                ({}, tuple(row[m] == "True" for m in META_LABELS)),
            )
            if row["label"] in index and row["modality"] in MODALITY_CODES:
                labels[index[row["label"]]] = MODALITY_CODES[row["modality"]]
    rows = [v for v in clips.values() if v[0]]
    order = np.random.default_rng(seed).permutation(len(rows))
    rows = [rows[i] for i in order[: limit or len(rows)]]
    return names, rows


@dataclass
class Worker:
    sens_a: float
    sens_v: float
    false_alarm: float
    cross_modal: float  # P(marks a true audible-only class visible / a visible-only class audible)
    meta_accuracy: float
    add_missing: float
    spammer: bool = False


def draw_workers(n: int, rng: np.random.Generator, spammer_share: float = 0.03) -> list[Worker]:
    out = []
    for _ in range(n):
        if rng.random() < spammer_share:
            out.append(Worker(0.0, 0.0, 0.25, 0.0, 0.5, 0.0, spammer=True))
            continue
        out.append(
            Worker(
                sens_a=float(rng.beta(7.5, 2.6)),  # mean 0.74
                sens_v=float(rng.beta(9.5, 2)),  # mean 0.83
                false_alarm=float(rng.beta(1.2, 50)),  # mean 0.023
                cross_modal=float(rng.beta(2, 6)),  # mean 0.25
                meta_accuracy=float(rng.beta(9, 1.5)),
                add_missing=float(rng.beta(2, 5)),
            )
        )
    return out


@dataclass
class SimCrowd:
    """Truth, proposals and workers; `answer` draws one annotation; `votes_for` assembles annotations as Votes."""

    class_names: list
    truth: list  # [{class: code}] per clip
    truth_meta: np.ndarray  # [clips, 3] bool
    gold_clips: np.ndarray
    proposals: list  # [np.ndarray of class indices] per clip
    hard: list  # [set of (class, bit)] per clip: atoms that are hard to notice
    confusers: list  # [set of class] per clip
    workers: list
    activity: np.ndarray  # P(a worker takes the next assignment)
    seed: int = 0
    rng: np.random.Generator = field(default=None)

    def __post_init__(self):
        if self.rng is None:
            self.rng = np.random.default_rng(self.seed + 1)

    @property
    def gold(self) -> dict:
        return {int(c): dict(self.truth[c]) for c in self.gold_clips}

    def gold_meta(self) -> dict:
        return {int(c): [bool(x) for x in self.truth_meta[c]] for c in self.gold_clips}

    def answer(self, w: int, clip: int):
        """(meta [3 bool], [(class, audible, visible)]) of worker w on clip."""
        wk, rng, truth = self.workers[w], self.rng, self.truth[clip]
        ticks = []
        props = self.proposals[clip]
        for k in props.tolist():
            code = truth.get(k, 0)
            if wk.spammer:
                a, v = rng.random() < wk.false_alarm, rng.random() < wk.false_alarm
            elif code:
                hard_a = (k, MOD_A) in self.hard[clip]
                hard_v = (k, MOD_V) in self.hard[clip]
                a = bool(code & MOD_A) and rng.random() < wk.sens_a * (HARD_FACTOR if hard_a else 1.0)
                v = bool(code & MOD_V) and rng.random() < wk.sens_v * (HARD_FACTOR if hard_v else 1.0)
                if code == MOD_A and rng.random() < wk.cross_modal:
                    v = True
                if code == MOD_V and rng.random() < wk.cross_modal / 2:
                    a = True
            else:
                fa = min(wk.false_alarm * CONFUSER_FACTOR, 0.5) if k in self.confusers[clip] else wk.false_alarm
                a, v = rng.random() < fa, rng.random() < fa * 0.6
            if a or v:
                ticks.append((k, bool(a), bool(v)))
        shown = set(props.tolist())
        for k, code in truth.items():
            if k not in shown and not wk.spammer and rng.random() < wk.add_missing:
                ticks.append((k, bool(code & MOD_A), bool(code & MOD_V)))
        right = rng.random(len(META_LABELS)) < wk.meta_accuracy
        meta = [bool(t) if r else not bool(t) for t, r in zip(self.truth_meta[clip], right)]
        return meta, ticks

    def catch_f1(self, answers: dict) -> float:
        """Catch F1 of an assignment's answers on its gold clips (the live scoring function)."""
        gold = {str(c): {str(k): MODALITY_NAMES[m] for k, m in self.truth[c].items()} for c in answers}
        ans = {str(c): {str(k): (a, v) for k, a, v in ticks} for c, (_m, ticks) in answers.items()}
        return catch_scores(gold, ans)[0]

    def run_batches(self, batches: list, annotators: list, log: dict, seen: dict | None = None) -> list:
        """Each batch (list of clips, the last two gold) gets annotators[i] approved assignments: workers drawn by
        activity (distinct within a batch, and, as assignment_start refuses them, none who already answered one of
        its non-gold clips: `seen` {clip: set of workers}, updated); an assignment below REJECT_BELOW catch F1 is
        rejected and re-posted. Returns [(worker, assignment id, clip, meta, ticks)]; log counts assignments."""
        out = []
        seen = {} if seen is None else seen
        gold_set = self._gold_set
        for clips, n in zip(batches, annotators):
            taken: set = set().union(*(seen.get(c, set()) for c in clips if c not in gold_set))
            approved = 0
            while approved < n:
                p = self.activity.copy()
                p[list(taken)] = 0
                w = int(self.rng.choice(len(self.workers), p=p / p.sum()))
                taken.add(w)
                answers = {c: self.answer(w, c) for c in clips}
                gold_part = {c: answers[c] for c in clips if c in self._gold_set}
                f1 = self.catch_f1(gold_part) if gold_part else 1.0
                log["assignments"] = log.get("assignments", 0) + 1
                log.setdefault("catch_f1", []).append(f1)
                if f1 < REJECT_BELOW:
                    log["rejected"] = log.get("rejected", 0) + 1
                    continue
                aid = log["assignments"]
                approved += 1
                for c in clips:
                    out.append((w, aid, c, *answers[c]))
                    seen.setdefault(c, set()).add(w)
        return out

    @property
    def _gold_set(self) -> set:
        return set(self.gold_clips.tolist())

    def make_batches(self, clips, batch_size: int = 20, catch: int = 2, start: int = 0) -> list:
        """Batches of (batch_size - catch) clips from `clips` plus `catch` gold clips taken round-robin."""
        clips = [int(c) for c in clips]
        per = batch_size - catch
        gold = self.gold_clips.tolist()
        out = []
        for i in range(0, len(clips), per):
            g = [gold[(start + len(out) * catch + j) % len(gold)] for j in range(catch)]
            out.append(clips[i : i + per] + g)
        return out

    def votes_for(self, records: list) -> tuple[Votes, dict]:
        """Votes (annotations in submission order) and catch_clips {group: (worker, [gold clips])}."""
        ann_clip, ann_worker, ann_group, meta = [], [], [], []
        t_ann, t_cls, t_a, t_v = [], [], [], []
        catch: dict = {}
        gold_set = self._gold_set
        for i, (w, aid, c, m, ticks) in enumerate(records):
            ann_clip.append(c)
            ann_worker.append(w)
            ann_group.append(aid)
            meta.append(m)
            if c in gold_set:
                catch.setdefault(aid, (w, []))[1].append(c)
            for k, a, v in ticks:
                t_ann.append(i)
                t_cls.append(k)
                t_a.append(a)
                t_v.append(v)
        cand_clip = np.concatenate([np.full(len(p), c) for c, p in enumerate(self.proposals)])
        cand_class = np.concatenate(self.proposals)
        votes = Votes(
            n_clips=len(self.truth),
            n_classes=len(self.class_names),
            ann_clip=ann_clip,
            ann_worker=ann_worker,
            ann_meta=np.array(meta, dtype=bool).reshape(-1, len(META_LABELS)),
            ann_group=ann_group,
            tick_ann=t_ann,
            tick_class=t_cls,
            tick_audible=t_a,
            tick_visible=t_v,
            worker_quality=np.full(len(self.workers), np.nan),
            cand_clip=cand_clip,
            cand_class=cand_class,
        )
        return votes, catch


def make_crowd(
    class_names,
    truth_rows,
    *,
    n_gold: int = 417,
    n_workers: int = 200,
    n_proposals: int = 20,
    spammer_share: float = 0.03,
    seed: int = 0,
) -> SimCrowd:
    """A SimCrowd over truth_rows [(labels {class: code}, meta)], the first n_gold clips gold."""
    rng = np.random.default_rng(seed)
    n_classes = len(class_names)
    truth = [dict(labels) for labels, _m in truth_rows]
    meta = np.array([m for _l, m in truth_rows], dtype=bool).reshape(-1, len(META_LABELS))
    freq = np.ones(n_classes)
    co: dict[int, set] = {}
    for labels in truth:
        for k in labels:
            freq[k] += 1
            co.setdefault(k, set()).update(labels)
    freq /= freq.sum()
    proposals, hard, confusers = [], [], []
    for labels in truth:
        keep = [k for k in labels if rng.random() > 0.1]
        pool = sorted(set().union(*(co.get(k, set()) for k in labels)) - set(labels))
        n_conf = min(len(pool), max(0, (n_proposals - len(keep)) // 3))
        conf = set(rng.choice(pool, n_conf, replace=False).tolist()) if n_conf else set()
        rest = n_proposals - len(keep) - len(conf)
        others = rng.choice(n_classes, size=max(rest, 0) * 2, p=freq)
        extra = [k for k in dict.fromkeys(others.tolist()) if k not in labels and k not in conf][: max(rest, 0)]
        props = np.array(sorted(set(keep) | conf | set(extra)), dtype=np.int64)
        proposals.append(props)
        confusers.append(conf)
        hard.append(
            {
                (k, bit)
                for k, code in labels.items()
                for bit in (MOD_A, MOD_V)
                if code & bit and rng.random() < HARD_SHARE
            }
        )
    workers = draw_workers(n_workers, rng, spammer_share)
    activity = 1.0 / np.arange(1, n_workers + 1) ** 0.8
    activity = activity[rng.permutation(n_workers)]
    return SimCrowd(
        class_names=list(class_names),
        truth=truth,
        truth_meta=meta,
        gold_clips=np.arange(min(n_gold, len(truth)), dtype=np.int64),
        proposals=proposals,
        hard=hard,
        confusers=confusers,
        workers=workers,
        activity=activity / activity.sum(),
        seed=seed,
    )


def fixed_overlap(crowd: SimCrowd, per_clip=(3, 5), log: dict | None = None):
    """Every non-gold clip in batches answered by 3-5 annotators (uniform per batch). Returns (votes, catch_clips,
    log)."""
    log = {} if log is None else log
    others = np.arange(len(crowd.gold_clips), len(crowd.truth))
    batches = crowd.make_batches(others)
    lo, hi = per_clip
    n = crowd.rng.integers(lo, hi + 1, size=len(batches)).tolist()
    records = crowd.run_batches(batches, n, log)
    votes, catch = crowd.votes_for(records)
    return votes, catch, log


def adaptive_overlap(
    crowd: SimCrowd,
    *,
    min_votes: int = 2,
    max_votes: int = 5,
    max_expected_errors: float = 0.5,
    stop_when_unanimous: bool = True,
    method: str = "modality_ds",
    log: dict | None = None,
):
    """Every non-gold clip first gets min_votes annotators; then, round by round, the clips the merge is still
    unsure of (labels.core.overlap.plan_overlap) are batched again and get one more annotator, until none is
    left or all have max_votes. Returns (votes, catch_clips, log); log["rounds"] lists the clips asked per round."""
    log = {} if log is None else log
    seen: dict = {}
    others = np.arange(len(crowd.gold_clips), len(crowd.truth))
    batches = crowd.make_batches(others)
    records = crowd.run_batches(batches, [min_votes] * len(batches), log, seen)
    log["rounds"] = [len(others)]
    start = len(batches)
    for _ in range(max_votes - min_votes):
        votes, catch = crowd.votes_for(records)
        plan = plan_overlap(
            votes,
            gold=crowd.gold,
            method=method,
            min_votes=min_votes,
            max_votes=max_votes,
            max_expected_errors=max_expected_errors,
            stop_when_unanimous=stop_when_unanimous,
        )
        need = np.flatnonzero(plan.need)
        if not len(need):
            break
        log["rounds"].append(len(need))
        batches = crowd.make_batches(need, start=start)
        start += len(batches)
        records += crowd.run_batches(batches, [1] * len(batches), log, seen)
    votes, catch = crowd.votes_for(records)
    return votes, catch, log
