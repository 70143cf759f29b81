"""Benchmark: our vectorised VGGSounder metrics vs the ``vggsounder`` package, same input, same run.

3 models x all clips of the published label CSV with scores (VGGSounder pickle layout, logits as
lists of floats), every metric, all five subsets, default regime (the reference's default
``VGGSounder()``: clips with background music left out) -- plus, for ours only, the all-clips
regime and the meta-label breakdown for information.

Each side runs in its own subprocess so that its peak memory (ru_maxrss) is its own; both load
the same pickles from disk (loading is part of the work: the reference loads every pickle once
per modality, ours once). Numbers are checked to agree (1e-6).

Also timed: the product path that users run (``manage.py benchmark``, the REST API and the /reports/
page all call ``annotation.services.reports.report_build``): in a subprocess with Django set up on a
throwaway sqlite database (migrated and taxonomy loaded beforehand, not timed),
``report_build(labels_csv, [dir], out_dir, figures=False)`` -- labels CSV + taxonomy check, files
streamed through ``benchmark.evaluate.evaluate_stream`` (next file read in a 2nd thread), report.json
and the tables in CSV/Markdown/LaTeX/HTML. With its default meta-label breakdown (7 more evaluations
on subsets of all 15,069 clips: more work than the reference does) and with ``meta=False`` (the same
metrics as the reference, plus the report's files).

    .venv/bin/python bench/bench_metrics.py [--models 3] [--clips 0=all] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def _peak_mib() -> float:
    """Peak resident memory of this process (VmHWM; unlike ru_maxrss it is not inherited from the parent
    across fork+exec, so each side counts only itself)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child_ours(model_dir: str, labels_csv: str, out_json: str):
    import numpy as np  # noqa: F401

    from benchmark import LabelSet, default_class_names, evaluate, metric_table
    from benchmark.evaluate import evaluate_paths
    from benchmark.io import load_predictions_dir

    base = _peak_mib()
    t0 = time.perf_counter()
    classes = default_class_names()
    labels = LabelSet.from_csv(labels_csv, classes)
    t_labels = time.perf_counter()
    if os.environ.get("BENCH_PREFETCH") == "1":
        # one file read in a background thread while the previous model is evaluated
        files = sorted(os.path.join(model_dir, f) for f in os.listdir(model_dir))
        results = evaluate_paths(labels, files, classes, regime="default", prefetch=True)
        t_load = t_labels
    else:
        models = load_predictions_dir(model_dir, classes)
        t_load = time.perf_counter()
        results = evaluate(labels, models, regime="default")
    t1 = time.perf_counter()
    table = metric_table(results)
    out = {
        "seconds": t1 - t0,
        "labels_s": t_labels - t0,
        "load_s": t_load - t_labels,
        "metrics_s": t1 - t_load,
        "peak_mib": _peak_mib(),
        "baseline_mib": base,
        "table": _table_dict(table),
    }
    with open(out_json, "w") as fh:
        json.dump(out, fh)


def _table_dict(table) -> dict:
    return {
        "models": [str(m) for m in table.index],
        "cols": {f"{m}|{s}": [None if v != v else float(v) for v in table[(m, s)].tolist()] for m, s in table.columns},
    }


def child_product(model_dir: str, labels_csv: str, out_json: str, meta: bool):
    import django

    django.setup()
    from benchmark import metric_table
    from reports.services import report_build

    base = _peak_mib()
    out_dir = tempfile.mkdtemp(prefix="bench_report_")
    t0 = time.perf_counter()
    rep = report_build(labels_csv, [model_dir], out_dir, figures=False, meta=meta)
    t1 = time.perf_counter()
    out = {
        "seconds": t1 - t0,
        "peak_mib": _peak_mib(),
        "baseline_mib": base,
        "files": len(os.listdir(out_dir)),
        "table": _table_dict(metric_table(rep["results"])),
    }
    with open(out_json, "w") as fh:
        json.dump(out, fh)


def django_env(var_dir: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env.update(DJANGO_SETTINGS_MODULE="config.settings", AVCROWD_DEV="1", AVCROWD_VAR_DIR=var_dir)
    return env


def child_ref(model_dir: str, labels_csv: str, out_json: str):
    warnings.filterwarnings("ignore")
    from vggsounder import benchmark as ref
    from vggsounder.labels import VGGSounder

    base = _peak_mib()
    t0 = time.perf_counter()
    vs = VGGSounder(labels_csv)  # defaults: background_music=False
    results = ref.compute_all_results(model_dir, vggsounder=vs, verbose=False)
    t1 = time.perf_counter()
    table = ref.get_metric_dataframe(results)
    peak = _peak_mib()
    # the part of the reference's time spent reading pickles: it loads each file once per modality
    t2 = time.perf_counter()
    for f in sorted(os.listdir(model_dir)):
        for modality in ["av", "a", "v", "a only", "v only"]:
            ref.load_test_predictions(os.path.join(model_dir, f), modality)
    out = {
        "seconds": t1 - t0,
        "load_s": time.perf_counter() - t2,
        "peak_mib": peak,
        "baseline_mib": base,
        "table": _table_dict(table),
    }
    with open(out_json, "w") as fh:
        json.dump(out, fh)


def run_child(which: str, model_dir: str, labels_csv: str, prefetch: bool = False, env: dict | None = None) -> dict:
    fd, out_json = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    cmd = [sys.executable, os.path.abspath(__file__), "--child", which, model_dir, labels_csv, out_json]
    subprocess.run(cmd, check=True, cwd=ROOT, env={**(env or os.environ), "BENCH_PREFETCH": "1" if prefetch else "0"})
    with open(out_json) as fh:
        res = json.load(fh)
    os.unlink(out_json)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=int, default=3)
    ap.add_argument("--clips", type=int, default=0, help="first N clips of the label CSV (0 = all)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of ours (best time reported)")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        which, model_dir, labels_csv, out_json = args.child
        if which.startswith("product"):
            child_product(model_dir, labels_csv, out_json, meta=which == "product")
        else:
            (child_ours if which == "ours" else child_ref)(model_dir, labels_csv, out_json)
        return

    import numpy as np
    import pandas as pd

    from benchmark import LabelSet, default_class_names
    from benchmark.labels import default_labels_csv
    from benchmark.synthetic import synthetic_predictions

    tmp = tempfile.mkdtemp(prefix="bench_metrics_")
    labels_csv = str(default_labels_csv())
    if args.clips:
        full = pd.read_csv(labels_csv, dtype=str, keep_default_na=False)
        keep = set(full.video_id.drop_duplicates().iloc[: args.clips])
        labels_csv = os.path.join(tmp, "labels.csv")
        full[full.video_id.isin(keep)].to_csv(labels_csv, index=False)
    classes = default_class_names()
    labels = LabelSet.from_csv(labels_csv, classes)
    model_dir = os.path.join(tmp, "models")
    os.makedirs(model_dir)
    for i in range(args.models):
        data = synthetic_predictions(labels, seed=100 + i, kind="scores")
        with open(os.path.join(model_dir, f"model{i}.pkl"), "wb") as fh:
            pickle.dump(data, fh, protocol=4)
        del data
    size = sum(os.path.getsize(os.path.join(model_dir, f)) for f in os.listdir(model_dir))
    print(
        f"input: {len(labels)} clips (default regime: {int((~labels.meta['background_music']).sum())}), "
        f"{args.models} models with scores for a/v/av, {size / 2**20:.0f} MiB of pickles"
    )

    ours = min(
        (run_child("ours", model_dir, labels_csv) for _ in range(max(1, args.repeat))), key=lambda r: r["seconds"]
    )
    ours_pf = min(
        (run_child("ours", model_dir, labels_csv, prefetch=True) for _ in range(max(1, args.repeat))),
        key=lambda r: r["seconds"],
    )
    var_dir = os.path.join(tmp, "var")
    os.makedirs(var_dir)
    denv = django_env(var_dir)
    manage = [sys.executable, os.path.join(ROOT, "manage.py")]
    subprocess.run(manage + ["migrate", "-v", "0"], check=True, cwd=ROOT, env=denv)
    subprocess.run(manage + ["load_taxonomy"], check=True, cwd=ROOT, env=denv, stdout=subprocess.DEVNULL)
    product = min(
        (run_child("product", model_dir, labels_csv, env=denv) for _ in range(max(1, args.repeat))),
        key=lambda r: r["seconds"],
    )
    product_nometa = min(
        (run_child("product-nometa", model_dir, labels_csv, env=denv) for _ in range(max(1, args.repeat))),
        key=lambda r: r["seconds"],
    )
    ref = run_child("ref", model_dir, labels_csv)

    t_ours = pd.DataFrame(ours["table"]["cols"], index=ours["table"]["models"], dtype=float)
    t_ref = pd.DataFrame(ref["table"]["cols"], index=ref["table"]["models"], dtype=float).loc[t_ours.index]
    diffs = []
    for key in t_ours.columns:
        a = t_ours[key].to_numpy(float)
        b = t_ref[key].to_numpy(float)
        if not np.array_equal(np.isnan(a), np.isnan(b)):
            diffs.append(float("inf"))
        elif np.isfinite(a).any():
            diffs.append(float(np.nanmax(np.abs(a - b))))
    maxdiff = max(diffs)
    t_pf = pd.DataFrame(ours_pf["table"]["cols"], index=ours_pf["table"]["models"], dtype=float)
    assert t_pf.loc[t_ours.index].equals(t_ours), "prefetching changed the numbers"
    for res in (product, product_nometa):
        t_prod = pd.DataFrame(res["table"]["cols"], index=res["table"]["models"], dtype=float)
        assert t_prod.loc[t_ours.index].equals(t_ours), "the product path changed the numbers"
    print(
        f"reference vggsounder.benchmark.compute_all_results: {ref['seconds']:.2f} s, "
        f"peak RSS {ref['peak_mib']:.0f} MiB (after imports {ref['baseline_mib']:.0f} MiB)"
    )
    print(
        f"ours benchmark.evaluate (incl. CSV + pickle loading): {ours['seconds']:.3f} s "
        f"[labels {ours['labels_s']:.3f} s, pickles {ours['load_s']:.3f} s, metrics {ours['metrics_s']:.3f} s], "
        f"peak RSS {ours['peak_mib']:.0f} MiB (after imports {ours['baseline_mib']:.0f} MiB)"
    )
    print(f"  (the reference spends about {ref['load_s']:.1f} s of it reading the pickles, once per modality)")
    print(
        f"ours with prefetch (next file read in a 2nd thread while a model is evaluated): "
        f"{ours_pf['seconds']:.3f} s, peak RSS {ours_pf['peak_mib']:.0f} MiB -> "
        f"{ref['seconds'] / ours_pf['seconds']:.1f}x end to end"
    )
    print(
        f"speed-up: {ref['seconds'] / ours['seconds']:.1f}x end to end; metrics alone "
        f"{(ref['seconds'] - ref['load_s']) / ours['metrics_s']:.0f}x; "
        f"peak memory ratio ours/ref {ours['peak_mib'] / ref['peak_mib']:.2f}"
    )
    for label, res in (
        ("with its default meta-label breakdown", product),
        ("meta=False: the reference's work + report files", product_nometa),
    ):
        print(
            f"product path report_build(labels_csv, [dir], out, figures=False), {label}: {res['seconds']:.3f} s, "
            f"peak RSS {res['peak_mib']:.0f} MiB (after Django + imports {res['baseline_mib']:.0f} MiB), "
            f"{res['files']} files -> {ref['seconds'] / res['seconds']:.1f}x end to end, "
            f"peak memory ratio {res['peak_mib'] / ref['peak_mib']:.2f}"
        )
    print(f"max |ours - reference| over {len(diffs)} table columns: {maxdiff:.2e}")
    try:
        print(f"load average during the run: {os.getloadavg()[0]:.1f} (machine has {os.cpu_count()} CPUs)")
    except OSError:
        pass


if __name__ == "__main__":
    main()
