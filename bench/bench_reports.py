"""Benchmark: metrics and reports at 1x and 10x the VGGSounder test set (15,069 / 150,690 clips).

The label set is the published VGGSounder CSV repeated ``--scale`` times (clip ids suffixed), the models are
synthetic scores correlated with it (float32, as stored model runs and the published score files hold them).
Each measurement runs in its own child process so that its peak resident memory (VmHWM) is its own; wall-clock
``seconds`` and ``cpu_seconds`` (all threads of the process: steadier than wall-clock on a shared machine), and
for the reports ``helper_cpu_seconds`` (the processes that draw the figures, ``benchmark.figures.FigurePool``):

* ``metrics``: one scored model, every metric and subset, default regime, no meta breakdown
  (``benchmark.evaluate.evaluate_stream``); the peak is reported in total and above the inputs (labels + model).
* ``report`` / ``report-nofig``: ``benchmark.report.write_report`` with ``--models`` scored models, the default
  meta-label breakdown and all tables, with and without the figures (what ``manage.py benchmark`` and
  ``--no-figures`` do once the inputs are read).
* ``product`` / ``product-nofig``: the product path of ``manage.py benchmark`` (and of the API's task):
  ``reports.services.report_build(labels_csv, [dir], out)`` with and without figures, on a label CSV and 3 model
  pickles written in the published layout (``collections.defaultdict(dict)``, float32 logits, protocol 4), in a
  child with Django set up on a throwaway SQLite database (migrated and the taxonomy loaded first, not timed).
* ``cooc``: the class co-occurrence counts behind the co-occurrence figure, as an int32 matrix product (the old
  way), as float32 products in row chunks and as directly counted label pairs (the default); the counts are
  checked to be identical.

    .venv/bin/python bench/bench_reports.py --scale 1 [--what metrics,report,report-nofig,cooc] [--models 3]
    .venv/bin/python bench/bench_reports.py --scale 10 --what metrics,cooc
    .venv/bin/python bench/bench_reports.py --scale 1 --what product --repeat 2   # report_build, Django
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench_saves import reset_peak, status_mib  # noqa: E402


def _children_cpu() -> float:
    """CPU seconds of this process's finished child processes (the report's figure helpers)."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def scaled_labels(scale: int):
    """The published label set repeated ``scale`` times (ids suffixed ``_r<k>`` after the first copy)."""
    import numpy as np

    from benchmark import LabelSet, default_class_names
    from benchmark.labels import default_labels_csv

    base = LabelSet.from_csv(default_labels_csv(), default_class_names())
    if scale == 1:
        return base
    ids = np.concatenate(
        [base.video_ids] + [np.array([f"{v}_r{k}" for v in base.video_ids], dtype=object) for k in range(1, scale)]
    )
    tile = lambda a: np.concatenate([a] * scale)  # noqa: E731
    return LabelSet(
        ids,
        base.classes,
        tile(base.has_a),
        tile(base.has_v),
        tile(base.has_av),
        {k: tile(v) for k, v in base.meta.items()},
    )


def scored_model(labels, seed: int, name: str):
    """A float32 scored model of every clip, correlated with the labels (scores in [n, C] per input)."""
    import numpy as np

    from benchmark import ModelPredictions

    rng = np.random.default_rng(seed)
    n, C = len(labels), len(labels.classes)
    truths = {"a": labels.truth("a"), "v": labels.truth("v"), "av": labels.truth("all")}
    scores = {}
    for inp, T in truths.items():
        s = rng.standard_normal((n, C), dtype=np.float32)
        s += (2.5 * rng.random((n, 1), dtype=np.float32)) * T
        scores[inp] = s
    return ModelPredictions(name, labels.video_ids, labels.classes, scores=scores)


def write_product_inputs(scale: int, n_models: int, d: str) -> tuple[str, str]:
    """A label CSV and ``n_models`` pickles in the published layout for the product measurements."""
    import collections
    import pickle

    import numpy as np
    import pandas as pd

    labels = scaled_labels(scale)
    rows = []
    for m, name in ((labels.has_a, "A"), (labels.has_v, "V"), (labels.has_av, "AV")):
        r, c = np.nonzero(m)
        rows.append(
            pd.DataFrame(
                {
                    "video_id": labels.video_ids[r],
                    "label": np.asarray(labels.classes)[c],
                    "modality": name,
                    "background_music": labels.meta["background_music"][r],
                    "static_image": labels.meta["static_image"][r],
                    "voice_over": labels.meta["voice_over"][r],
                }
            )
        )
    labels_csv = os.path.join(d, "labels.csv")
    pd.concat(rows).to_csv(labels_csv, index=False)
    model_dir = os.path.join(d, "models")
    os.makedirs(model_dir)
    for i in range(n_models):
        model = scored_model(labels, i + 1, f"model{i + 1}")
        data = collections.defaultdict(dict)
        for r, vid in enumerate(model.video_ids):
            data[f"{vid}.mp4"]["logits"] = {inp: model.scores[inp][r] for inp in ("a", "v", "av")}
        with open(os.path.join(model_dir, f"model-{i + 1}.0.pkl"), "wb") as fh:
            pickle.dump(data, fh, protocol=4)
    return labels_csv, model_dir


def child_product(figures: bool, labels_csv: str, model_dir: str, out_json: str):
    import django

    django.setup()
    from reports.services import report_build

    with tempfile.TemporaryDirectory() as out:
        t0, c0, k0 = time.perf_counter(), time.process_time(), _children_cpu()
        rep = report_build(labels_csv, [model_dir], out, figures=figures)
        res = {
            "what": "product" if figures else "product-nofig",
            "clips": rep["labels"]["clips"],
            "seconds": time.perf_counter() - t0,
            "cpu_seconds": time.process_time() - c0,
            "helper_cpu_seconds": _children_cpu() - k0,
            "files": len(os.listdir(out)),
            "peak_mib": status_mib("VmHWM"),
        }
    with open(out_json, "w") as fh:
        json.dump(res, fh)


def run_product(scale: int, n_models: int, repeat: int) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="bench_reports_") as d:
        labels_csv, model_dir = write_product_inputs(scale, n_models, d)
        var_dir = os.path.join(d, "var")
        os.makedirs(var_dir)
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
        env.update(DJANGO_SETTINGS_MODULE="config.settings", AVCROWD_DEV="1", AVCROWD_VAR_DIR=var_dir)
        manage = [sys.executable, os.path.join(ROOT, "manage.py")]
        subprocess.run(manage + ["migrate", "-v", "0"], check=True, cwd=ROOT, env=env)
        subprocess.run(manage + ["load_taxonomy"], check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
        out = []
        for _ in range(repeat):
            for what in ("product-nofig", "product"):
                fd, out_json = tempfile.mkstemp(suffix=".json")
                os.close(fd)
                cmd = [
                    sys.executable,
                    os.path.abspath(__file__),
                    "--child-product",
                    what,
                    labels_csv,
                    model_dir,
                    out_json,
                ]
                subprocess.run(cmd, check=True, cwd=ROOT, env=env)
                with open(out_json) as fh:
                    out.append(json.load(fh))
                os.unlink(out_json)
        return out


def child(what: str, scale: int, n_models: int, out_json: str):
    import numpy as np

    from benchmark.evaluate import evaluate_stream
    from benchmark.report import cooccurrence_matrix, write_report

    base_rss = status_mib("VmRSS")
    labels = scaled_labels(scale)
    res = {"what": what, "scale": scale, "clips": len(labels)}
    if what == "metrics":
        model = scored_model(labels, 1, "m1")
        held = status_mib("VmRSS")
        reset_peak()
        t0, c0 = time.perf_counter(), time.process_time()
        evaluate_stream(labels, [model], regime="default", prefetch=False)
        res["seconds"], res["cpu_seconds"] = time.perf_counter() - t0, time.process_time() - c0
        res["inputs_mib"] = held - base_rss
        res["peak_mib"] = status_mib("VmHWM")
        res["peak_above_inputs_mib"] = status_mib("VmHWM") - held
    elif what in ("report", "report-nofig"):
        models = [scored_model(labels, i + 1, f"model{i + 1}") for i in range(n_models)]
        held = status_mib("VmRSS")
        reset_peak()
        with tempfile.TemporaryDirectory() as out:
            t0, c0, k0 = time.perf_counter(), time.process_time(), _children_cpu()
            write_report(out, labels, models, figures=what == "report", prefetch=False)
            res["seconds"], res["cpu_seconds"] = time.perf_counter() - t0, time.process_time() - c0
            res["helper_cpu_seconds"] = _children_cpu() - k0
            res["files"] = len(os.listdir(out))
        res["peak_mib"] = status_mib("VmHWM")
        res["peak_above_inputs_mib"] = status_mib("VmHWM") - held
    elif what == "cooc":
        T = labels.truth("all")
        t0 = time.perf_counter()
        Ti = T.astype(np.int32)
        old = Ti.T @ Ti
        res["int32_seconds"] = time.perf_counter() - t0
        del Ti
        t0 = time.perf_counter()
        f32 = cooccurrence_matrix(labels, method="float32")
        res["float32_seconds"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        new = cooccurrence_matrix(labels)  # the default: label pairs counted directly
        res["pairs_seconds"] = time.perf_counter() - t0
        res["identical"] = bool(np.array_equal(old, new) and np.array_equal(old, f32))
        res["total_pairs"] = int(new.sum())
    else:
        raise SystemExit(f"unknown measurement {what!r}")
    with open(out_json, "w") as fh:
        json.dump(res, fh)


def run_child(what: str, scale: int, n_models: int) -> dict:
    fd, out_json = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    cmd = [sys.executable, os.path.abspath(__file__), "--child", what, str(scale), str(n_models), out_json]
    subprocess.run(cmd, check=True, cwd=ROOT)
    with open(out_json) as fh:
        res = json.load(fh)
    os.unlink(out_json)
    return res


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--child-product":
        child_product(sys.argv[2] == "product", sys.argv[3], sys.argv[4], sys.argv[5])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=int, choices=[1, 10], default=1, help="1x or 10x the VGGSounder test set")
    ap.add_argument("--what", default="metrics,report-nofig,report,cooc")
    ap.add_argument("--models", type=int, default=3, help="models in the report measurements")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    for what in args.what.split(","):
        if what == "product":
            runs = run_product(args.scale, args.models, args.repeat)
        else:
            runs = [run_child(what, args.scale, args.models) for _ in range(args.repeat)]
        for r in runs:
            shown = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}
            print(json.dumps(shown), flush=True)


if __name__ == "__main__":
    main()
