"""Aggregators beyond plain Dawid–Skene (pure numpy, no Django).

``fit_shrunk``: Dawid–Skene EM over binary tasks where
- every annotator's confusion matrix (one per flag: audible, visible, each meta label; the caller gives each flag its
  own worker id) is shrunk towards the pooled confusion of all annotators on that flag with ``worker_strength``
  pseudo-answers, so an annotator seen on a handful of clips is not trusted (or distrusted) on that evidence alone;
- the prior P(true) is per task group (class x flag: "dog barking audible" is far likelier than "tuning fork
  visible" among the proposals) and shrunk towards the flag's overall prior with ``prior_strength`` pseudo-tasks.
Gold tasks are clamped after every E-step, as in labels.core.dawid_skene. The result has the same fields as
``BinaryDS`` (tasks, p_true, ...), so labels.core.merge builds label sets from either.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from labels.core.dawid_skene import EPS, BinaryDS, clamp_posteriors, known_answers


def fit_shrunk(
    task,
    worker,
    label,
    *,
    task_group,
    worker_pool,
    n_iter: int = 50,
    tol: float = 1e-5,
    true_task=None,
    true_label=None,
    worker_strength: float = 4.0,
    prior_strength: float = 10.0,
) -> BinaryDS:
    """EM over binary answers (one row per answer). task_group: group id per answer's task (class x flag) for the
    prior; worker_pool: pool id per answer's worker (the flag) for the confusion shrinkage. Both must be constant
    within a task / within a worker."""
    task = np.asarray(task, dtype=np.int64)
    if len(task) == 0:
        return BinaryDS(np.zeros(0, np.int64), np.zeros(0), 0.0, np.zeros((0, 2, 2)), np.zeros(0, np.int64), 0, [])
    tasks, t = np.unique(task, return_inverse=True)
    workers, w = np.unique(np.asarray(worker, dtype=np.int64), return_inverse=True)
    y = np.asarray(label, dtype=bool).astype(np.int64)
    n_tasks, n_workers = len(tasks), len(workers)
    groups, g_of_answer = np.unique(np.asarray(task_group, dtype=np.int64), return_inverse=True)
    task_g = np.zeros(n_tasks, dtype=np.int64)
    task_g[t] = g_of_answer
    pools, p_of_answer = np.unique(np.asarray(worker_pool, dtype=np.int64), return_inverse=True)
    worker_p = np.zeros(n_workers, dtype=np.int64)
    worker_p[w] = p_of_answer
    # the flag-level prior each group shrinks towards: groups share the pool of their answers' workers
    group_pool = np.zeros(len(groups), dtype=np.int64)
    group_pool[g_of_answer] = p_of_answer
    per_group_tasks = np.bincount(task_g, minlength=len(groups)).astype(float)

    clamp = partial(clamp_posteriors, known=known_answers(tasks, true_task, true_label))

    per_task = np.bincount(t, minlength=n_tasks).astype(float)
    ones = np.bincount(t, weights=y, minlength=n_tasks) / per_task
    p1 = clamp(np.stack([1.0 - ones, ones], axis=1))[:, 1]

    def m_step(p1):
        # s[worker, answer, value]
        s = np.zeros((n_workers, 2, 2))
        for v, pv in ((0, 1.0 - p1), (1, p1)):
            s[:, :, v] = np.bincount(w * 2 + y, weights=pv[t], minlength=2 * n_workers).reshape(n_workers, 2)
        pooled = np.zeros((len(pools), 2, 2))
        np.add.at(pooled, worker_p, s)
        pooled_rate = (pooled + 1.0) / (pooled + 1.0).sum(axis=1, keepdims=True)
        errors = s + worker_strength * pooled_rate[worker_p]
        errors = np.maximum(errors / errors.sum(axis=1, keepdims=True), EPS)
        flag_prior = np.bincount(task_g, weights=p1, minlength=len(groups))
        pool_sum = np.bincount(group_pool, weights=flag_prior, minlength=len(pools))
        pool_n = np.bincount(group_pool, weights=per_group_tasks, minlength=len(pools))
        base = (pool_sum + 0.5) / (pool_n + 1.0)
        prior = (flag_prior + prior_strength * base[group_pool]) / (per_group_tasks + prior_strength)
        return errors, np.clip(prior, EPS, 1 - EPS)

    errors, prior = m_step(p1)
    history, it = [], 0
    for it in range(1, n_iter + 1):  # noqa: B007 - the last value is the iteration count reported
        log_err = np.log(errors).reshape(-1, 2)
        pair = w * 2 + y
        ll0 = np.bincount(t, weights=log_err[pair, 0], minlength=n_tasks) + np.log(1 - prior[task_g])
        ll1 = np.bincount(t, weights=log_err[pair, 1], minlength=n_tasks) + np.log(prior[task_g])
        new = 1.0 / (1.0 + np.exp(np.clip(ll0 - ll1, -700, 700)))
        new = clamp(np.stack([1.0 - new, new], axis=1))[:, 1]
        change = float(np.abs(new - p1).max())
        p1 = new
        errors, prior = m_step(p1)
        history.append(change)
        if change < tol:
            break
    return BinaryDS(
        tasks=tasks,
        p_true=p1,
        prior=float(p1.mean()),
        errors=errors,
        workers=workers,
        n_iter=it,
        elbo=history,
    )


def fit_categorical(
    task,
    worker,
    answer,
    *,
    n_states: int,
    task_group,
    n_iter: int = 50,
    tol: float = 1e-4,
    true_task=None,
    true_state=None,
    worker_strength: float = 4.0,
    prior_strength: float = 10.0,
):
    """Dawid–Skene over answers with n_states values (one row per answer: task, worker, answer state), with the
    same shrinkage as fit_shrunk: each worker's n_states x n_states confusion towards the pooled confusion, the prior
    per task group towards the overall prior. Used for the modality of a (clip, class): none / A / V / AV, so that an
    annotator who marks audible-only sources as visible too is modelled as such, not as one who sees things.
    Returns (tasks, posterior [n_tasks, n_states], iterations)."""
    task = np.asarray(task, dtype=np.int64)
    s_n = int(n_states)
    if len(task) == 0:
        return np.zeros(0, np.int64), np.zeros((0, s_n)), 0
    tasks, t = np.unique(task, return_inverse=True)
    _workers, w = np.unique(np.asarray(worker, dtype=np.int64), return_inverse=True)
    y = np.asarray(answer, dtype=np.int64)
    n_tasks, n_workers = len(tasks), int(w.max()) + 1
    groups, g_of_answer = np.unique(np.asarray(task_group, dtype=np.int64), return_inverse=True)
    task_g = np.zeros(n_tasks, dtype=np.int64)
    task_g[t] = g_of_answer
    per_group = np.bincount(task_g, minlength=len(groups)).astype(float)

    clamp = partial(clamp_posteriors, known=known_answers(tasks, true_task, true_state))

    # majority start: the share of each answer state per task, lightly smoothed
    p = np.stack([np.bincount(t, weights=(y == v), minlength=n_tasks) for v in range(s_n)], axis=1) + 0.01
    p = clamp(p / p.sum(axis=1, keepdims=True))
    pair = w * s_n + y

    def m_step(p):
        s = np.stack([np.bincount(pair, weights=p[t, v], minlength=n_workers * s_n) for v in range(s_n)], axis=1)
        s = s.reshape(n_workers, s_n, s_n)  # [worker, answer, value]
        pooled = s.sum(axis=0) + 1.0
        pooled = pooled / pooled.sum(axis=0, keepdims=True)
        err = s + worker_strength * pooled[None]
        err = np.maximum(err / err.sum(axis=1, keepdims=True), EPS)
        g_sum = np.stack([np.bincount(task_g, weights=p[:, v], minlength=len(groups)) for v in range(s_n)], axis=1)
        base = (g_sum.sum(axis=0) + 1.0) / (g_sum.sum() + s_n)
        prior = (g_sum + prior_strength * base[None]) / (per_group[:, None] + prior_strength)
        return np.log(err).reshape(n_workers * s_n, s_n), np.log(np.maximum(prior, EPS))

    log_err, log_prior = m_step(p)
    it = 0
    for it in range(1, n_iter + 1):  # noqa: B007 - the last value is the iteration count reported
        ll = np.stack([np.bincount(t, weights=log_err[pair, v], minlength=n_tasks) for v in range(s_n)], axis=1)
        ll += log_prior[task_g]
        ll -= ll.max(axis=1, keepdims=True)
        new = np.exp(ll)
        new = clamp(new / new.sum(axis=1, keepdims=True))
        change = float(np.abs(new - p).max())
        p = new
        log_err, log_prior = m_step(p)
        if change < tol:
            break
    return tasks, p, it
