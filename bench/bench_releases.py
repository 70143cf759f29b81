"""Benchmark: release creation and export at VGGSounder scale.

15,000 clips x 5 approved annotations x 30 proposals (every ClipAnswer stores all 30 proposals with their
audible/visible flags, ~3 of them ticked, as the HIT page saves them), 300 gold clips, 300 workers.
Phases, each in its own process so that its peak memory (ru_maxrss) is its own:

  setup    fresh database (SQLite file, or a PostgreSQL database that is dropped and re-created), schema,
           taxonomy, synthetic crowd data (not timed as part of the targets)
  measure  release_create (load, merge, closure, stats+agreement, store) and exports
           (VGGSounder CSV default regime and with background music, JSONL, Parquet)

    .venv/bin/python bench/bench_releases.py [--scale 1|10] [--clips 15000] [--annotations 5] [--proposals 30]
        [--db sqlite | postgres://postgres@127.0.0.1:5432/avcrowd_bench_releases]
        [--method majority|weighted|dawid_skene] [--n-iter 20] [--phase measure (re-use the database)]

Targets: release creation < 10 s, export < 3 s.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _django(db_url: str):
    os.environ["DATABASE_URL"] = db_url
    os.environ.setdefault("AVCROWD_DEV", "1")
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    import django

    django.setup()


def _recreate_postgres(db_url: str):
    from urllib.parse import urlparse

    import psycopg

    u = urlparse(db_url)
    name = u.path.lstrip("/")
    conn = psycopg.connect(
        host=u.hostname, port=u.port or 5432, user=u.username or "postgres", password=u.password, dbname="postgres"
    )
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()


def setup(db_url: str, n_clips: int, n_ann: int, n_prop: int, seed: int = 0):
    if db_url.startswith("sqlite:///"):
        path = db_url[len("sqlite:///") :]
        if os.path.exists(path):
            os.remove(path)
    else:
        _recreate_postgres(db_url)
    _django(db_url)
    import numpy as np
    from django.apps import apps
    from django.db import connection, transaction

    from catalog.models import Clip, Dataset, GoldLabel, TaxonomyClass
    from catalog.services.taxonomy import taxonomy_load
    from crowd.models import Assignment, Batch, BatchItem, ClipAnswer, Worker
    from crowd.services.progress import clips_accepted_recount

    t0 = time.perf_counter()
    with connection.schema_editor() as editor:
        for model in apps.get_models():
            if model._meta.managed and not model._meta.proxy:
                editor.create_model(model)
        # what a migration adds outside the models: the answers' generated `ticked` column (crowd 0007)
        import importlib

        importlib.import_module("crowd.migrations.0007_answer_ticked_column").add(apps, editor)
    taxonomy_load()
    rng = np.random.default_rng(seed)
    names = list(TaxonomyClass.objects.order_by("index").values_list("name", flat=True))
    cls_pk = dict(TaxonomyClass.objects.values_list("name", "id"))
    C = len(names)
    n_workers = 300
    n_gold = min(300, n_clips // 2)
    batch_size = 20
    with transaction.atomic():
        ds = Dataset.objects.create(name="bench", annotations_per_clip=3)
        clips = Clip.objects.bulk_create(
            [Clip(dataset=ds, video_id=f"vid{i:06d}_{i % 7:06d}", is_gold=i < n_gold) for i in range(n_clips)],
            batch_size=5000,
        )
        workers = Worker.objects.bulk_create(
            [
                Worker(backend="simulated", external_id=f"w{i}", mean_catch_f1=float(rng.uniform(0.2, 0.95)))
                for i in range(n_workers)
            ]
        )
        skill = rng.uniform(0.6, 0.95, n_workers)
        proposals = [rng.choice(C, n_prop, replace=False) for _ in range(n_clips)]
        truth = [p[: int(rng.integers(1, 5))] for p in proposals]
        truth_mod = [rng.choice(["A", "V", "AV"], len(t), p=[0.35, 0.05, 0.6]) for t in truth]
        meta_truth = rng.random((n_clips, 3)) < np.array([0.2, 0.1, 0.05])
        gold = [
            GoldLabel(clip=clips[i], cls_id=cls_pk[names[k]], modality=m, source="import")
            for i in range(n_gold)
            for k, m in zip(truth[i], truth_mod[i])
        ]
        GoldLabel.objects.bulk_create(gold, batch_size=5000)
        n_batches = (n_clips + batch_size - 1) // batch_size
        batches = Batch.objects.bulk_create([Batch(dataset=ds) for _ in range(n_batches)], batch_size=5000)
        items = []
        for b in range(n_batches):
            for pos, i in enumerate(range(b * batch_size, min((b + 1) * batch_size, n_clips))):
                items.append(
                    BatchItem(
                        batch=batches[b],
                        clip=clips[i],
                        position=pos,
                        is_gold=i < n_gold,
                        proposals=[names[k] for k in proposals[i]],
                    )
                )
        BatchItem.objects.bulk_create(items, batch_size=5000)
        assignments = []
        for b in range(n_batches):
            ws = rng.choice(n_workers, n_ann, replace=False)
            for w in ws:
                assignments.append(
                    Assignment(batch=batches[b], worker=workers[w], backend="simulated", status="approved")
                )
        assignments = Assignment.objects.bulk_create(assignments, batch_size=5000)
        answers = []
        for a_i, a in enumerate(assignments):
            b = a_i // n_ann
            wk = int(a.worker.external_id[1:])
            for i in range(b * batch_size, min((b + 1) * batch_size, n_clips)):
                tset = dict(zip(truth[i].tolist(), truth_mod[i].tolist()))
                labels = []
                for k in proposals[i].tolist():
                    if k in tset and rng.random() < skill[wk]:
                        m = tset[k]
                        labels.append({"name": names[k], "audible": "A" in m, "visible": "V" in m})
                    elif rng.random() < 0.02:
                        labels.append({"name": names[k], "audible": True, "visible": False})
                    else:
                        labels.append({"name": names[k], "audible": False, "visible": False})
                meta = np.where(rng.random(3) < skill[wk], meta_truth[i], ~meta_truth[i])
                answers.append(
                    ClipAnswer(
                        assignment=a,
                        clip=clips[i],
                        background_music=bool(meta[0]),
                        voice_over=bool(meta[1]),
                        static_image=bool(meta[2]),
                        played=True,
                        watch_seconds=10.0,
                        labels=labels,
                    )
                )
            if len(answers) >= 10000:
                ClipAnswer.objects.bulk_create(answers, batch_size=5000)
                answers = []
        ClipAnswer.objects.bulk_create(answers, batch_size=5000)
        clips_accepted_recount(ds.pk)  # rows written directly: the ops counters recounted once, as a bulk load does
    return {
        "setup_s": round(time.perf_counter() - t0, 1),
        "clip_answers": ClipAnswer.objects.count(),
        "peak_mib": round(_peak_mib(), 1),
    }


def measure(db_url: str, method: str = "majority", params: dict | None = None):
    _django(db_url)
    from bench_saves import backend_cpu  # CPU seconds of our PostgreSQL backend
    from django.db import connection

    import labels.services.create as create_mod
    from catalog.models import Dataset
    from labels.services.create import release_create
    from labels.services.export import release_export_to_file

    # process peak after the load and after the merge step (the phases that follow add their own)
    peaks: dict = {}
    real_merge = create_mod.merge

    def merge_measured(*a, **kw):
        peaks["peak_mib_after_load"] = round(_peak_mib(), 1)
        res = real_merge(*a, **kw)
        peaks["peak_mib_after_merge"] = round(_peak_mib(), 1)
        return res

    create_mod.merge = merge_measured
    if os.environ.get("BENCH_SKIP_CARD") == "1":  # memory of load/merge/closure/store alone (the card peaks higher)
        create_mod.release_quality_card = lambda *a, **kw: {"skipped": "BENCH_SKIP_CARD=1"}

    def peak_before(func, key):  # the process peak when `func` is called (i.e. after the phase before it)
        def measured(*a, **kw):
            peaks[key] = round(_peak_mib(), 1)
            return func(*a, **kw)

        return measured

    create_mod.release_stats = peak_before(create_mod.release_stats, "peak_mib_after_closure")
    create_mod.release_quality_card = peak_before(create_mod.release_quality_card, "peak_mib_after_agreement")
    create_mod._store = peak_before(create_mod._store, "peak_mib_after_quality_card")
    ds = Dataset.objects.get(name="bench")
    name = f"bench-{int(time.time() * 1000)}"
    timings: dict = {}
    db_cpu0 = backend_cpu(connection)
    c0 = time.process_time()
    t0 = time.perf_counter()
    release = release_create(ds, name, method=method, params=params, timings=timings)
    create_s = time.perf_counter() - t0
    cpu = {"python_cpu_s": round(time.process_time() - c0, 2)}
    if db_cpu0 is not None:
        cpu["db_cpu_s"] = round(backend_cpu(connection) - db_cpu0, 2)
    peak_create = _peak_mib()
    out = {
        "release_create_s": round(create_s, 2),
        "phases_s": {k: round(v, 2) for k, v in timings.items()},
        "method": method,
        "merge_params": release.params,
        "clips": release.stats["clips"],
        "labels": release.stats["labels"],
        **cpu,  # CPU seconds of this process and of its PostgreSQL backend: comparable on a loaded machine
        "peak_mib_after_create": round(peak_create, 1),
        **peaks,
    }
    exports = {}
    with tempfile.TemporaryDirectory() as tmp:
        for fmt, bm in (("vggsounder-csv", False), ("vggsounder-csv", True), ("jsonl", True), ("parquet", True)):
            path = os.path.join(tmp, f"x.{fmt}")
            t0 = time.perf_counter()
            size = release_export_to_file(release, fmt, path, include_background_music=bm)
            exports[f"{fmt}{'+bm' if bm else ''}"] = {"s": round(time.perf_counter() - t0, 2), "bytes": size}
    out["exports"] = exports
    out["peak_mib"] = round(_peak_mib(), 1)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--scale",
        type=int,
        default=None,
        choices=[1, 10],
        help="1: 15,446 clips (the VGGSounder test set), 10: 154,460 clips (overrides --clips)",
    )
    ap.add_argument("--clips", type=int, default=15000)
    ap.add_argument("--annotations", type=int, default=5)
    ap.add_argument("--proposals", type=int, default=30)
    ap.add_argument("--db", default="sqlite")
    ap.add_argument("--phase", choices=["all", "setup", "measure"], default="all")
    ap.add_argument("--repeat", type=int, default=1, help="measure runs (each in a fresh process)")
    ap.add_argument("--method", default="majority", help="merge method of the measured release_create")
    ap.add_argument("--n-iter", type=int, default=None, help="Dawid-Skene EM iterations (its default: 100)")
    args = ap.parse_args()
    if args.scale:
        args.clips = 15446 * args.scale
    params = {"n_iter": args.n_iter} if args.n_iter else {}
    db = args.db
    if db == "sqlite":
        db = "sqlite:///" + os.path.join(tempfile.gettempdir(), "avcrowd_bench_releases.sqlite3")
    if args.phase == "setup":
        print(json.dumps(setup(db, args.clips, args.annotations, args.proposals)))
        return
    if args.phase == "measure":
        print(json.dumps(measure(db, args.method, params)))
        return
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--db",
        db,
        "--clips",
        str(args.clips),
        "--annotations",
        str(args.annotations),
        "--proposals",
        str(args.proposals),
        "--method",
        args.method,
    ]
    if args.n_iter:
        cmd += ["--n-iter", str(args.n_iter)]
    setup_out = json.loads(
        subprocess.run(cmd + ["--phase", "setup"], check=True, capture_output=True, text=True)
        .stdout.strip()
        .splitlines()[-1]
    )
    print(f"database: {db.split('@')[-1] if '@' in db else db}")
    print(
        f"setup: {args.clips} clips x {args.annotations} annotations x {args.proposals} proposals -> "
        f"{setup_out['clip_answers']} approved ClipAnswers in {setup_out['setup_s']} s"
    )
    for r in range(args.repeat):
        res = json.loads(
            subprocess.run(cmd + ["--phase", "measure"], check=True, capture_output=True, text=True)
            .stdout.strip()
            .splitlines()[-1]
        )
        ph = ", ".join(f"{k} {v}" for k, v in res["phases_s"].items())
        print(
            f"run {r + 1}: release_create {res['release_create_s']} s ({ph}); {res['clips']} clips, "
            f"{res['labels']} labels; peak RSS after create {res['peak_mib_after_create']} MiB"
        )
        for k, v in res["exports"].items():
            print(f"  export {k}: {v['s']} s, {v['bytes'] / 1e6:.1f} MB")
        print(f"  peak RSS (create + exports) {res['peak_mib']} MiB")


if __name__ == "__main__":
    main()
