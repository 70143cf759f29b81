"""Benchmark: CPU seconds of each report figure, drawn one after another in one process (PNG + SVG each).

The inputs are those of the 15,069-clip report with 3 synthetic scored models (``bench_reports.py``): the labels
and the models are evaluated once, the five figures' inputs kept in a pickle (``--inputs``, made when missing).
Each figure is then drawn ``--repeat`` times with ``benchmark/figures.py`` and, with ``--compare FILE``, with
another version of that file (e.g. ``git show c35fc09:benchmark/figures.py > /tmp/before.py``), the two
alternating run by run, in this one process (matplotlib imported once, not timed). ``--import`` also times
importing matplotlib the way a figure helper does, in fresh processes.

    .venv/bin/python bench/bench_figures.py --repeat 3 [--compare /tmp/before.py] [--only radar,cooccurrence]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

KINDS = ("class_frequency", "cooccurrence", "radar", "delta_f1", "per_class_f1")


def make_inputs(path: str, n_models: int) -> None:
    """The five figures' inputs of the report at 15k clips (evaluated once here)."""
    from bench_reports import scaled_labels, scored_model

    from benchmark.evaluate import META_FILTERS, delta_f1_table, evaluate_stream, metric_table
    from benchmark.labels import apply_regime
    from benchmark.report import (
        class_frequency_data,
        cooccurrence_data,
        delta_f1_data,
        per_class_f1_data,
        per_class_json,
        radar_data,
    )

    labels = scaled_labels(1)
    gt = apply_regime(labels, "default")
    models = [scored_model(labels, i + 1, f"model{i + 1}") for i in range(n_models)]
    done = evaluate_stream(labels, models, list(labels.classes), meta_filters=META_FILTERS, prefetch=False)
    per_class, _ = per_class_json(done.per_class, labels.classes)
    jobs = {
        "class_frequency": ("class_frequency", class_frequency_data(gt)),
        "cooccurrence": cooccurrence_data(gt),
        "radar": ("radar", radar_data(metric_table(done.results))),
        "delta_f1": ("delta_f1", delta_f1_data(delta_f1_table(done.breakdown))),
        "per_class_f1": per_class_f1_data(per_class),
    }
    with open(path, "wb") as fh:
        pickle.dump(jobs, fh)


def load_module(path: str, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def import_seconds(path: str) -> float:
    """CPU seconds of a fresh process that loads ``path`` and imports matplotlib as a figure helper does."""
    code = (
        "import importlib.util, resource, sys\n"
        "spec = importlib.util.spec_from_file_location('_f', sys.argv[1])\n"
        "mod = importlib.util.module_from_spec(spec); sys.modules['_f'] = mod; spec.loader.exec_module(mod)\n"
        "getattr(mod, '_import_matplotlib', None) and mod._import_matplotlib()\n"
        "if not hasattr(mod, '_import_matplotlib'):\n"
        "    import matplotlib.backends.backend_agg, matplotlib.backends.backend_svg, matplotlib.figure\n"
        "    import matplotlib.image\n"
        "ru = resource.getrusage(resource.RUSAGE_SELF)\n"
        "print(ru.ru_utime + ru.ru_stime)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, path], check=True, capture_output=True, text=True)
    return float(out.stdout.strip())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inputs", default=os.path.join(tempfile.gettempdir(), "avcrowd_figure_inputs.pkl"))
    ap.add_argument("--models", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--compare", help="another benchmark/figures.py, run alternately with this tree's")
    ap.add_argument("--only", default=",".join(KINDS))
    ap.add_argument("--import", dest="imports", action="store_true", help="also time the helper's imports")
    ap.add_argument("--keep", help="write the figures into this folder (this tree's, and the other's in before/)")
    args = ap.parse_args()
    if not os.path.exists(args.inputs):
        make_inputs(args.inputs, args.models)
    with open(args.inputs, "rb") as fh:
        jobs = pickle.load(fh)
    versions = {"after": os.path.join(ROOT, "benchmark", "figures.py")}
    if args.compare:
        versions = {"before": args.compare, **versions}
    mods = {label: load_module(path, f"_figures_{label}") for label, path in versions.items()}
    import matplotlib.figure  # noqa: F401  imported once, not timed

    results = {label: {k: [] for k in args.only.split(",")} for label in mods}
    for _ in range(args.repeat):
        for label, mod in mods.items():
            for name in [k for k in results[label] if k != "import"]:
                kind, data = jobs[name]
                with tempfile.TemporaryDirectory() as d:
                    out = d
                    if args.keep:
                        out = os.path.join(args.keep, "before" if label == "before" else "")
                        os.makedirs(out, exist_ok=True)
                    c0 = time.process_time()
                    mod.draw(kind, out, name, data)
                    results[label][name].append(time.process_time() - c0)
            if args.imports:
                results[label].setdefault("import", []).append(import_seconds(versions[label]))
    for label, per_kind in results.items():
        total = [sum(v[i] for k, v in per_kind.items() if k != "import") for i in range(args.repeat)]
        shown = {k: [round(x, 3) for x in v] for k, v in per_kind.items()}
        print(json.dumps({"version": label, **shown, "total": [round(x, 3) for x in total]}), flush=True)
    print(json.dumps({"loadavg": os.getloadavg()}))


if __name__ == "__main__":
    main()
