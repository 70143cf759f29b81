"""Metric reports: resolve a label set (release or CSV) and model predictions (stored runs or files), run the
pure ``benchmark`` library, store the report's files. Used by the ``benchmark`` command, the API and the pages.

Label specs: a path to a CSV in the VGGSounder layout (command line only), or a release given as its id,
``<dataset>/<name>`` or a unique ``<name>``.
Prediction specs: ``run:<id>`` or the model name of a finished run (latest finished one), a predictions file
(.pkl/.pickle via the restricted unpickler, .csv, .jsonl) or a directory of them (command line only), or an
uploaded file (``upload:<storage path>``, from the API / pages).
"""

from __future__ import annotations

import os
import re
import tempfile
import uuid
from pathlib import Path

from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from benchmark import CONFUSION_DEFINITIONS, REGIMES, BenchmarkInputError, LabelSet, ModelPredictions
from benchmark.io import (
    LOADERS,
    JudgedPredictions,
    PredictionsFile,
    judged_dir_models,
    load_predictions,
    predictions_dir_files,
)
from benchmark.judge import judge_captions, load_captions_jsonl, make_judge
from benchmark.report import write_report
from catalog.errors import AvcrowdError, NotFound, ValidationError
from catalog.progress import NULL_BAR
from catalog.selectors.taxonomy import class_names
from labels.models import Release
from labels.selectors.releases import release_find, releases_list
from labels.services.export import release_to_dataframe
from proposals.models import ModelRun
from proposals.selectors import run_label_sets, run_scores
from reports.models import MetricReport

UPLOAD_PREFIX = "reports/uploads"
CLASSES_FROM = "the taxonomy (python manage.py load_taxonomy; VGGSounder's classes.csv)"
"""Where the allowed class names of predictions come from (named when ``strict`` refuses a name)."""


# --------------------------------------------------------------------------- inputs
def report_class_names() -> list[str]:
    names = list(class_names())
    if not names:
        raise ValidationError("the taxonomy is empty; run `python manage.py load_taxonomy` first")
    return names


def release_lookup(spec: str):
    """A release by id, "dataset/name" or a name unique across datasets (what --labels may name)."""
    spec = str(spec).strip()
    if spec.isdigit():
        found = Release.objects.select_related("dataset").filter(pk=int(spec)).first()
    else:
        try:
            found = release_find(spec)
        except NotFound:
            found = None
        except ValidationError as exc:  # the name exists in several datasets
            raise ValidationError(exc.message, field="labels") from None
    if found is None:
        known = [f"{r.dataset.name}/{r.name}" for r in releases_list()[:20]]
        raise ValidationError(
            f"no release {spec!r} and no such label CSV file; known releases: "
            + (", ".join(known) if known else "(none)"),
            field="labels",
        )
    return found


def labels_resolve(spec: str, class_names: list[str], *, allow_paths: bool = True) -> tuple[LabelSet, dict]:
    """A :class:`LabelSet` from a label CSV path or a release, plus a description for the report."""
    spec = str(spec).strip()
    if not spec:
        raise ValidationError("no label set given: name a release or a label CSV", field="labels")
    if spec.startswith("upload:"):
        path = _local_upload(spec)
        return LabelSet.from_csv(path, class_names), {"kind": "csv", "name": Path(spec).name}
    if allow_paths and (spec.lower().endswith(".csv") or os.path.sep in spec and os.path.exists(spec)):
        if not os.path.isfile(spec):
            raise ValidationError(f"label CSV {spec} not found", field="labels")
        return LabelSet.from_csv(spec, class_names), {"kind": "csv", "path": os.path.abspath(spec)}
    release = release_lookup(spec)
    df = release_to_dataframe(release)
    name = f"{release.dataset.name}/{release.name}"
    return (
        LabelSet.from_dataframe(df, class_names, source=f"release {name}"),
        {"kind": "release", "release": release.pk, "name": name},
    )


def _run_lookup(spec: str):
    qs = ModelRun.objects.select_related("checkpoint", "dataset")
    key = spec[4:] if spec.startswith("run:") else spec
    if key.isdigit():
        run = qs.filter(pk=int(key)).first()
        if run is None:
            raise ValidationError(f"no model run {key}", field="predictions")
        return run

    runs = list(
        qs.filter(Q(external_name=key) | Q(checkpoint__name=key), status=ModelRun.DONE).order_by("-finished_at", "-pk")[
            :1
        ]
    )
    if not runs:
        raise ValidationError(
            f"{spec!r} is neither a predictions file/directory nor the name or id of a finished model run",
            field="predictions",
        )
    return runs[0]


def run_predictions(run, class_names: list[str]) -> ModelPredictions:
    """A stored model run as :class:`ModelPredictions` (scores when it has them, else label sets)."""
    if run.status != "done":
        raise ValidationError(f"model run {run.pk} ({run.model_name}) is {run.status}, not done", field="predictions")
    try:
        video_ids, scores = run_scores(run)
        if scores:
            return ModelPredictions(run.model_name, video_ids, class_names, scores=dict(scores))
        return ModelPredictions.from_label_lists(
            run.model_name, run_label_sets(run), class_names, source=f"model run {run.pk}"
        )
    except ValueError as exc:  # includes BenchmarkInputError
        raise ValidationError(f"model run {run.pk} ({run.model_name}): {exc}", field="predictions") from None


def predictions_resolve(
    specs, class_names: list[str], *, allow_paths: bool = True, strict: bool = False
) -> tuple[list, list[dict]]:
    """Every model named by ``specs`` (a list, or comma-separated strings) -> (models, descriptions).

    A directory laid out like VGGSounder's judged CSVs (``a/``, ``v/``, ``av/`` holding
    ``predictions-<model>.csv``) gives one model per name. Unknown class names in files are skipped and
    counted, or refused with ``strict``.

    Files are not read here: they come back as :class:`benchmark.io.PredictionsFile` (loaded one after another
    while the report is built, see :func:`benchmark.report.write_report`); stored runs come back loaded."""
    if isinstance(specs, str):
        specs = [specs]
    flat = [s.strip() for spec in specs for s in str(spec).split(",") if s.strip()]
    if not flat:
        raise ValidationError("no predictions given: name model runs or predictions files", field="predictions")
    models, described = [], []
    opts = {"strict": strict, "classes_from": CLASSES_FROM}
    for spec in flat:
        if spec.startswith("upload:"):
            models.append(PredictionsFile(_local_upload(spec), class_names, name=Path(spec).stem, **opts))
            described.append({"kind": "file", "name": Path(spec).name})
        elif allow_paths and os.path.isdir(spec) and judged_dir_models(spec):
            found = [
                JudgedPredictions(paths, class_names, name=n, **opts) for n, paths in judged_dir_models(spec).items()
            ]
            models += found
            described += [{"kind": "judged", "path": os.path.abspath(spec), "model": m.name} for m in found]
        elif allow_paths and os.path.isdir(spec):
            found = [PredictionsFile(p, class_names, **opts) for p in predictions_dir_files(spec)]
            models += found
            described += [{"kind": "file", "path": os.path.abspath(spec), "model": m.name} for m in found]
        elif allow_paths and (os.path.isfile(spec) or Path(spec).suffix.lower() in LOADERS):
            if not os.path.isfile(spec):
                raise ValidationError(f"predictions file {spec} not found", field="predictions")
            if Path(spec).suffix.lower() not in LOADERS:
                load_predictions(spec, class_names)  # refuses the file type with the reason
            models.append(PredictionsFile(spec, class_names, **opts))
            described.append({"kind": "file", "path": os.path.abspath(spec)})
        else:
            run = _run_lookup(spec)
            models.append(run_predictions(run, class_names))
            described.append({"kind": "run", "run": run.pk, "name": run.model_name})
    seen: dict[str, int] = {}
    for m, d in zip(models, described):  # two runs of one model: keep both, tell them apart
        seen[m.name] = seen.get(m.name, 0) + 1
        if seen[m.name] > 1:
            m.name = f"{m.name}#{d.get('run', seen[m.name])}"
    return models, described


# --------------------------------------------------------------------------- building
def _check_options(regime: str, confusion: str):
    if regime not in REGIMES:
        raise ValidationError(f"unknown regime {regime!r}; allowed: {', '.join(REGIMES)}", field="regime")
    if confusion not in CONFUSION_DEFINITIONS:
        raise ValidationError(
            f"unknown confusion definition {confusion!r}; allowed: {', '.join(CONFUSION_DEFINITIONS)}",
            field="confusion",
        )


def report_build(
    labels_spec: str,
    prediction_specs,
    out_dir,
    *,
    regime: str = "default",
    confusion: str = "v1.0",
    meta: bool = True,
    figures: bool = True,
    allow_paths: bool = True,
    captions=(),
    judge: str = "embedding",
    strict: bool = False,
    bar=NULL_BAR,
) -> dict:
    """Resolve the inputs, run the benchmark and write report.json, tables and figures into ``out_dir``.
    ``captions``: JSONL files of free-text outputs, turned into label sets by ``judge`` ("embedding" or a local
    transformers model directory; command line only). Unknown class names in predictions files are skipped and
    counted in report.json (``models.<name>.unknown_names``), or refused with ``strict``. Bad input raises
    :class:`ValidationError`. ``bar`` (catalog.progress) advances per model evaluated."""
    _check_options(regime, confusion)
    try:
        classes = report_class_names()
        labels, labels_desc = labels_resolve(labels_spec, classes, allow_paths=allow_paths)
        models, described = (
            ([], [])
            if (captions and not prediction_specs)
            else predictions_resolve(prediction_specs, classes, allow_paths=allow_paths, strict=strict)
        )
        judged = {}
        if captions:
            judge_fn = make_judge(judge)
            for path in captions:
                model, stats = judge_captions(Path(path).stem, load_captions_jsonl(path), labels, judge_fn)
                models.append(model)
                described.append({"kind": "captions", "path": os.path.abspath(path), "judge": judge})
                judged[model.name] = stats.as_dict()
        bar.set_description("evaluating models")
        bar.reset(total=len(models))
        report = write_report(
            out_dir,
            labels,
            models,
            regime=regime,
            confusion=confusion,
            meta=meta,
            figures=figures,
            params={
                "labels": labels_desc,
                "predictions": described,
                "strict": bool(strict),
                **({"judge": judge, "judge_stats": judged} if captions else {}),
            },
            label_source=labels_desc.get("name") or labels_desc.get("path"),
            on_model=lambda name: bar.update(1),
        )
        return report
    except BenchmarkInputError as exc:
        raise ValidationError(str(exc)) from None


def _check_upload(spec: str) -> str:
    """The storage path of an uploaded input (``upload:<storage path>``); refuses anything else."""
    name = spec[len("upload:") :]
    if not name.startswith(UPLOAD_PREFIX + "/") or ".." in Path(name).parts:
        raise ValidationError(f"not an uploaded report input: {spec!r}")
    if not default_storage.exists(name):
        raise ValidationError(f"uploaded file {Path(name).name} is gone")
    return name


def _local_upload(spec: str) -> str:
    """An uploaded input (``upload:<storage path>``) as a local file path (downloaded when storage is remote)."""
    name = _check_upload(spec)
    try:
        return default_storage.path(name)
    except NotImplementedError:  # remote storage (S3): copy to a temporary file
        suffix = Path(name).suffix
        fd, tmp = tempfile.mkstemp(suffix=suffix)
        with os.fdopen(fd, "wb") as out, default_storage.open(name, "rb") as src:
            for chunk in iter(lambda: src.read(1 << 20), b""):
                out.write(chunk)
        return tmp


def report_upload(fileobj, filename: str) -> str:
    """Store an uploaded label CSV or predictions file; returns the spec ``upload:<storage path>``."""
    suffix = Path(filename).suffix.lower()
    if suffix not in set(LOADERS) | {".csv"}:
        raise ValidationError(
            f"{filename}: unsupported file type {suffix or '(none)'}; allowed: {', '.join(sorted(set(LOADERS)))}",
            field="files",
        )
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in Path(filename).name)[:100]
    path = default_storage.save(f"{UPLOAD_PREFIX}/{uuid.uuid4().hex}/{safe}", fileobj)
    return f"upload:{path}"


def report_request(
    *,
    labels: str,
    predictions,
    regime: str = "default",
    confusion: str = "v1.0",
    meta: bool = True,
    title: str = "",
    user=None,
    strict: bool = False,
) -> MetricReport:
    """Check and record a report request (reports.tasks.report_create starts it in the background).

    Only releases, stored runs and uploaded files are accepted here (no server paths)."""
    _check_options(regime, confusion)
    labels = str(labels or "").strip()
    if not labels:
        raise ValidationError("no label set given: name a release or upload a label CSV", field="labels")
    if isinstance(predictions, str):
        predictions = [predictions]
    specs = [s.strip() for p in (predictions or []) for s in str(p).split(",") if s.strip()]
    if not specs:
        raise ValidationError("no predictions given: pick model runs or upload predictions files", field="predictions")
    # fail early on names that do not exist (the data itself is read by the task)
    if labels.startswith("upload:"):
        _check_upload(labels)
    else:
        release_lookup(labels)
    for spec in specs:
        if spec.startswith("upload:"):
            _check_upload(spec)
        else:
            _run_lookup(spec)
    report = MetricReport.objects.create(
        title=title[:200],
        created_by=user if (user is not None and user.is_authenticated) else None,
        params={
            "labels": labels,
            "predictions": specs,
            "regime": regime,
            "confusion": confusion,
            "meta": bool(meta),
            "strict": bool(strict),
        },
    )
    return report


def report_fail(report: MetricReport, message: str) -> None:
    """Fail a report that has not started (e.g. its task could not be queued), with the reason."""
    MetricReport.objects.filter(pk=report.pk, status=MetricReport.PENDING).update(
        status=MetricReport.FAILED, error=message[:2000], finished_at=timezone.now()
    )


def report_run(report_id: int) -> MetricReport:
    """Run a recorded report and store its files (idempotent: a finished report is returned as is)."""
    with transaction.atomic():
        report = MetricReport.objects.select_for_update().filter(pk=report_id).first()
        if report is None:
            raise NotFound(f"no metric report {report_id}")
        if report.status == MetricReport.DONE:
            return report
        report.status, report.started_at, report.error = MetricReport.RUNNING, timezone.now(), ""
        report.save(update_fields=["status", "started_at", "error"])
    p = report.params
    tmp = None
    try:
        with tempfile.TemporaryDirectory(prefix="avcrowd-report-") as tmp:
            rep = report_build(
                p.get("labels", ""),
                p.get("predictions", []),
                tmp,
                regime=p.get("regime", "default"),
                confusion=p.get("confusion", "v1.0"),
                meta=p.get("meta", True),
                allow_paths=False,
                strict=p.get("strict", False),
            )
            files = {}
            for name in sorted(os.listdir(tmp)):
                target = f"{report.storage_prefix}/{name}"
                if default_storage.exists(target):
                    default_storage.delete(target)
                with open(os.path.join(tmp, name), "rb") as fh:
                    files[name] = default_storage.save(target, File(fh, name=name))
    except AvcrowdError as exc:
        return _finish(report, MetricReport.FAILED, error=public_message(exc.message, p, tmp_dir=tmp))
    except Exception as exc:  # unexpected: record it, then let the task log it
        _finish(report, MetricReport.FAILED, error=public_message(f"internal error: {type(exc).__name__}: {exc}", p))
        raise
    summary = {
        "labels": rep["labels"],
        "models": rep["models"],
        "paper": rep["tables"]["paper"],
        "figures": [
            f
            for k, v in rep["files"].items()
            if k.startswith("figure_")
            for f in v.values()
            if f.endswith(".svg") or f.endswith(".png")
        ],
    }
    return _finish(report, MetricReport.DONE, files=files, summary=summary)


_ABS_PATH = re.compile(r"(?<![\w:/.])/(?:[^\s/'\",;:()]+/)+([^\s/'\",;:()]+)")


def public_message(message: str, params: dict | None = None, *, tmp_dir: str | None = None) -> str:
    """``message`` as a user of the web app may read it: no server paths. An uploaded input is named by the file
    name it was uploaded as, the report's work folder is left out, and any other absolute path is cut to its last
    component."""
    text = str(message)
    for spec in [(params or {}).get("labels", "")] + list((params or {}).get("predictions", [])):
        if isinstance(spec, str) and spec.startswith("upload:"):
            name = spec[len("upload:") :]
            try:
                local = default_storage.path(name)
            except NotImplementedError:
                local = None
            if local:
                text = text.replace(local, Path(name).name)
            text = text.replace(name, Path(name).name)
    if tmp_dir:
        text = text.replace(tmp_dir + os.sep, "").replace(tmp_dir, "")
    return _ABS_PATH.sub(lambda m: m.group(1), text)


def _finish(report: MetricReport, status: str, *, error: str = "", files=None, summary=None) -> MetricReport:
    report.status, report.error, report.finished_at = status, error, timezone.now()
    fields = ["status", "error", "finished_at"]
    if files is not None:
        report.files = files
        fields.append("files")
    if summary is not None:
        report.summary = summary
        fields.append("summary")
    report.save(update_fields=fields)
    return report


def report_file_open(report: MetricReport, name: str):
    """(file object, name) of one output file of a finished report; NotFound otherwise."""
    path = (report.files or {}).get(name)
    if not path or not default_storage.exists(path):
        raise NotFound(f"report {report.pk} has no file {name!r}")
    return default_storage.open(path, "rb")
