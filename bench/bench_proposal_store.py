"""Benchmark (not a test): storing a VGGSounder-sized proposal set in the database.

    .venv/bin/python bench/bench_proposal_store.py [--database-url postgres://postgres@127.0.0.1:5432/avcrowd_bench]
                                                   [--clips 15446] [--models 3] [--batch-size 5000]
    .venv/bin/python bench/bench_proposal_store.py --scale 1|10 [--database-url ...] [--repeat 3] [--code DIR]

With ``--scale``: the whole ``make_proposals`` command at 1x (15,446 clips) or 10x (154,460 clips), 3 models with
scores on a, v and av (309 classes), as a user runs it. A dataset ``bench-props-<scale>x`` (clips, one original
label each, 200 gold clips, three imported model runs stored as .npz artifacts under ``--media``) is made once and
kept; each repetition runs the command in a fresh child process (``--code DIR``: the source tree the child imports,
e.g. a checkout of main for a "before" figure), prints wall and CPU seconds (the process and its PostgreSQL
backend), the split into read / apply / store / evaluate as far as the code reports it, the process's peak RSS
(VmHWM) and the number of rows, then deletes the set it made.

Creates the database if it is missing, migrates it and loads the 309-class taxonomy, makes a dataset of
`--clips` clips, applies the default (VGGSounder) strategy to synthetic predictions of `--models` models
(bench_proposals.synthetic, with the taxonomy's real class names), then times what `make_proposals` does
after the strategy: one transaction that creates the ProposalSet and inserts every proposal with its
provenance (proposals.services.proposals_store). Prints rows/s, then checks the row count and one clip's
proposals against the in-memory result, and deletes the bench dataset.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
sys.path.insert(0, str(ROOT))

from bench_saves import DEFAULT_DB, backend_cpu, ensure_database, setup_django  # noqa: E402


def django_env(args) -> dict:
    return {
        "DATABASE_URL": args.database_url,
        "AVCROWD_DEV": "1",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "LOG_LEVEL": "WARNING",
        "MEDIA_ROOT": args.media,
    }


def scale_setup(args) -> str:
    """The bench dataset of this scale (made once): clips, original labels, gold clips, three model runs."""
    import numpy as np
    from django.core.files.base import ContentFile
    from django.core.management import call_command
    from django.db import connection

    from catalog.models import Clip, Dataset, GoldLabel, TaxonomyClass
    from catalog.services.bulk import analyze, bulk_insert
    from proposals.core.predictions_io import PredictionArrays, to_npz_bytes
    from proposals.models import ModelRun

    name = f"bench-props-{args.scale}x"
    n = 15446 * args.scale
    from django.db.utils import DatabaseError

    try:  # an existing bench dataset is used as it is, on the schema it has (a "before" run migrates back)
        ds = Dataset.objects.filter(name=name).first()
        if ds is not None and ModelRun.objects.filter(dataset=ds, status=ModelRun.DONE).count() == args.models:
            return name
    except DatabaseError:
        ds = None
    call_command("migrate", "--noinput", verbosity=0)
    if ds is not None:
        ds.delete()
    call_command("load_taxonomy", verbosity=0)
    t0 = time.perf_counter()
    classes = list(TaxonomyClass.objects.order_by("index").values_list("id", "name"))
    C = len(classes)
    rng = np.random.default_rng(args.scale)
    ds = Dataset.objects.create(name=name)
    vids = [f"v{i:07d}" for i in range(n)]
    gold = set(rng.choice(n, 200, replace=False).tolist())
    Clip.objects.bulk_create(
        (Clip(dataset=ds, video_id=v, is_gold=i in gold) for i, v in enumerate(vids)), batch_size=5000
    )
    clip_pk = dict(Clip.objects.filter(dataset=ds).values_list("video_id", "id"))
    popularity = rng.dirichlet(np.full(C, 0.5))
    truth = np.zeros((n, C), dtype=bool)
    orig = rng.integers(0, C, n)
    truth[np.arange(n), orig] = True
    extra = rng.integers(0, C, (n, 3))
    extra = np.where(rng.random((n, 3)) < 0.8, rng.choice(C, (n, 3), p=popularity), extra)
    truth[np.arange(n)[:, None], extra] = True
    through = Clip.original_labels.through
    bulk_insert(through, ["clip_id", "taxonomyclass_id"], ((clip_pk[vids[i]], classes[orig[i]][0]) for i in range(n)))
    for i in sorted(gold):
        GoldLabel.objects.bulk_create(
            [GoldLabel(clip_id=clip_pk[vids[i]], cls_id=classes[j][0], modality="av") for j in np.flatnonzero(truth[i])]
        )
    for m in range(args.models):
        quality = 2.0 + m
        scores = {
            mod: (
                rng.standard_normal((n, C), dtype=np.float32)
                + np.float32(quality * (0.6 if mod != "av" else 1.0)) * truth
            )
            for mod in ("a", "v", "av")
        }
        arrays = PredictionArrays(vids, [c for _, c in classes], scores)
        run = ModelRun(
            dataset=ds,
            external_name=f"model{m}",
            kind="scores",
            modalities=["a", "v", "av"],
            status=ModelRun.DONE,
            n_clips=n,
            n_done=n,
        )
        run.artifact.save(f"{name}-model{m}.npz", ContentFile(to_npz_bytes(arrays)), save=False)
        run.save()
        del scores, arrays
    analyze(Clip, through)
    print(f"set up {name}: {n} clips, {args.models} runs in {time.perf_counter() - t0:.1f} s ({connection.vendor})")
    return name


def scale_child(args) -> None:
    """One make_proposals run in this (fresh) process; prints one JSON line."""
    sys.path.insert(0, args.code)
    os.chdir(args.code)
    setup_django(django_env(args))
    import logging

    from django.core.management import call_command
    from django.db import connection

    import proposals.services as services

    phases: dict[str, float] = {}

    def timed(label, fn):
        def wrapper(*a, **kw):
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                phases[label] = phases.get(label, 0.0) + time.perf_counter() - t

        return wrapper

    # the code before the chunked apply: one function per phase; after: the service logs its own split
    for label, fn in (
        ("read", "dataset_predictions"),
        ("apply", "apply_strategy"),
        ("store", "proposals_store"),
        ("evaluate", "_evaluate_result"),
    ):
        if hasattr(services, fn) and not hasattr(services, "PROPOSAL_CHUNK_CLIPS"):
            setattr(services, fn, timed(label, getattr(services, fn)))

    class Grab(logging.Handler):
        def emit(self, record):
            extra = getattr(record, "phases", None)
            if extra:
                phases.update(extra)

    services.log.addHandler(Grab())
    services.log.setLevel(logging.INFO)
    from catalog.models import Dataset
    from proposals.models import ProposalSet

    ds = Dataset.objects.get(name=f"bench-props-{args.scale}x")
    cpu0, db0 = time.process_time(), backend_cpu(connection) or 0.0
    t0 = time.perf_counter()
    call_command("make_proposals", "--dataset", ds.name, "--inactive", stdout=open(os.devnull, "w"))
    wall = time.perf_counter() - t0
    cpu, db = time.process_time() - cpu0, (backend_cpu(connection) or 0.0) - db0
    hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
    pset = ProposalSet.objects.filter(dataset=ds).order_by("-pk").first()
    out = {
        "wall": wall,
        "cpu": cpu,
        "db_cpu": db,
        "peak_mib": hwm / 1024,
        "rows": pset.n_proposals,
        "phases": phases,
        "recall": (pset.evaluation or {}).get("recall"),
        "mean_size": (pset.evaluation or {}).get("mean_size"),
    }
    pset.delete()
    print("RESULT " + json.dumps(out))


def scale_main(args) -> None:
    setup_django(django_env(args))
    scale_setup(args)
    runs = []
    for r in range(args.repeat):
        cmd = [
            sys.executable,
            __file__,
            "--child",
            "--scale",
            str(args.scale),
            "--database-url",
            args.database_url,
            "--media",
            args.media,
            "--code",
            args.code,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            print(proc.stdout[-3000:], proc.stderr[-3000:])
            raise SystemExit(f"run {r + 1} failed")
        res = json.loads(line[7:])
        runs.append(res)
        ph = ", ".join(f"{k} {v:.1f}" for k, v in res["phases"].items())
        print(
            f"run {r + 1}: {res['wall']:.1f} s wall ({ph}); CPU {res['cpu']:.1f} s + PostgreSQL {res['db_cpu']:.1f} s; "
            f"peak RSS {res['peak_mib']:.0f} MiB; {res['rows']} rows; mean size {res['mean_size']:.2f}, "
            f"recall {res['recall']}"
        )
    walls = [r["wall"] for r in runs]
    peaks = [r["peak_mib"] for r in runs]
    print(
        f"{args.scale}x, code {args.code}: wall min {min(walls):.1f} / median {statistics.median(walls):.1f} s; "
        f"peak RSS min {min(peaks):.0f} / max {max(peaks):.0f} MiB; load average {os.getloadavg()[0]:.1f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default=os.environ.get("DATABASE_URL", DEFAULT_DB))
    ap.add_argument("--clips", type=int, default=15446)
    ap.add_argument("--models", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=5000, help="rows per INSERT")
    ap.add_argument("--scale", type=int, choices=[1, 10], help="time the whole make_proposals command")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--media", default="/tmp/avcrowd-bench-media", help="MEDIA_ROOT of the bench runs' artifacts")
    ap.add_argument("--code", default=str(ROOT.parent), help="source tree the measured command runs from")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        scale_child(args)
        return
    ensure_database(args.database_url)
    if args.scale:
        scale_main(args)
        return
    setup_django(
        {
            "DATABASE_URL": args.database_url,
            "AVCROWD_DEV": "1",
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "LOG_LEVEL": "WARNING",
        }
    )
    from bench_proposals import synthetic
    from django.core.management import call_command
    from django.db import connection, transaction

    from catalog.models import Clip, Dataset, TaxonomyClass
    from proposals.core.strategy import Predictions, Strategy, apply_strategy
    from proposals.models import Proposal, ProposalSet
    from proposals.services import proposals_store

    call_command("migrate", "--noinput", verbosity=0)
    call_command("load_taxonomy", verbosity=0)
    names = list(TaxonomyClass.objects.order_by("index").values_list("name", flat=True))
    synth, _ = synthetic(args.clips, args.models, n_classes=len(names))
    preds = Predictions(class_names=names, video_ids=synth.video_ids, scores=synth.scores, original=synth.original)
    strategy = Strategy()
    t0 = time.perf_counter()
    result = apply_strategy(strategy, preds)
    t_apply = time.perf_counter() - t0

    ds = Dataset.objects.create(name=f"bench-store-{int(time.time())}")
    try:
        Clip.objects.bulk_create([Clip(dataset=ds, video_id=v) for v in preds.video_ids], batch_size=5000)
        clip_pk = dict(Clip.objects.filter(dataset=ds).values_list("video_id", "id"))
        cls_pk = dict(TaxonomyClass.objects.values_list("name", "id"))
        t0 = time.perf_counter()
        with transaction.atomic():
            pset = ProposalSet.objects.create(dataset=ds, strategy=strategy.to_dict(), active=True)
            n = proposals_store(pset, result, clip_pk, cls_pk, batch_size=args.batch_size)
        t_store = time.perf_counter() - t0
        stored = Proposal.objects.filter(proposal_set=pset).count()
        first = preds.video_ids[0]
        expect = {names[j] for j in result.proposed[0].nonzero()[0]}
        got = set(Proposal.objects.filter(proposal_set=pset, clip__video_id=first).values_list("cls__name", flat=True))
        print(
            f"{connection.vendor} {connection.pg_version if connection.vendor == 'postgresql' else ''}; "
            f"{os.cpu_count()} CPUs; {args.clips} clips x {args.models} models; batch {args.batch_size} rows/INSERT"
        )
        print(f"apply default strategy (cold):      {t_apply:7.2f} s")
        print(
            f"store proposals (one transaction):  {t_store:7.2f} s  {n} rows, {n / t_store:,.0f} rows/s, "
            f"{n / args.clips:.1f} per clip"
        )
        print(
            f"check: {stored} rows in the table ({'ok' if stored == n else 'MISMATCH'}); "
            f"clip {first}: {'ok' if got == expect else 'MISMATCH'} ({len(got)} proposals)"
        )
    finally:
        ds.delete()


if __name__ == "__main__":
    main()
