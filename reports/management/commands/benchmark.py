"""python manage.py benchmark --labels RELEASE|CSV --predictions DIR_OR_RUNS [...] --out DIR"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from benchmark.predictions import unknown_names_text
from catalog.errors import AvcrowdError
from catalog.progress import progress_bar
from reports.services import report_build


class Command(BaseCommand):
    help = (
        "Run the VGGSounder benchmark (vggsounder 1.0 metrics) on a label set and model predictions and write "
        "report.json, tables (CSV, Markdown, LaTeX, HTML) and figures (PNG, SVG) into --out."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--labels",
            required=True,
            help="a release (id, DATASET/NAME or unique NAME) or a label CSV in the VGGSounder layout",
        )
        parser.add_argument(
            "--predictions",
            nargs="+",
            default=[],
            help="predictions: a directory of .pkl/.csv/.jsonl files (or of judged CSVs in a/, v/, av/ as VGGSounder "
            "publishes them), files, model-run ids "
            "(run:ID or ID) or model names of finished runs; several, or comma-separated",
        )
        parser.add_argument(
            "--captions",
            nargs="+",
            default=[],
            help="free-text outputs (.jsonl: video_id + a/v/av descriptions), judged per "
            "ground-truth class (LLM-assisted evaluation)",
        )
        parser.add_argument(
            "--judge",
            default="embedding",
            help="judge for --captions: 'embedding' (offline fallback) or a local transformers "
            "model directory (instruction-tuned LLM)",
        )
        parser.add_argument(
            "--regime",
            choices=["default", "all"],
            default="default",
            help="default: leave out clips with background music (as vggsounder does); all: every clip",
        )
        parser.add_argument(
            "--confusion", choices=["v1.0", "pre-v1.0"], default="v1.0", help="modality-confusion definition"
        )
        parser.add_argument(
            "--strict",
            action="store_true",
            help="refuse a predictions file holding a class name outside the taxonomy (default: skip such names "
            "and report how often each occurred)",
        )
        parser.add_argument("--no-meta", action="store_true", help="skip the meta-label breakdown")
        parser.add_argument("--no-figures", action="store_true", help="tables and report.json only")
        parser.add_argument("--out", required=True, help="output directory (created if missing)")

    def handle(self, *args, **opts):
        if not opts["predictions"] and not opts["captions"]:
            raise CommandError("give --predictions and/or --captions")
        try:
            with progress_bar(desc="reading inputs", unit="model") as bar:
                rep = report_build(
                    opts["labels"],
                    opts["predictions"],
                    opts["out"],
                    regime=opts["regime"],
                    confusion=opts["confusion"],
                    meta=not opts["no_meta"],
                    figures=not opts["no_figures"],
                    captions=opts["captions"],
                    judge=opts["judge"],
                    strict=opts["strict"],
                    bar=bar,
                )
        except AvcrowdError as exc:
            raise CommandError(exc.as_text()) from None
        labels = rep["labels"]
        self.stdout.write(
            f"labels: {labels['source']} ({labels['clips_in_regime']} of {labels['clips']} clips, "
            f"regime {rep['params']['regime']})"
        )
        judged = rep["params"].get("judge_stats") or {}
        for name, m in rep["models"].items():
            extra = ""
            if name in judged:
                j = judged[name]
                extra = f"; judged {j['asked']} descriptions, {j['parse_failures']} unparsable answers"
            if m.get("not_judged"):
                extra += f"; {m['not_judged']} clips left out (not judged in every input)"
            self.stdout.write(f"model {name}: {m['kind']}, {m['clips']} clips, inputs {'/'.join(m['inputs'])}{extra}")
            if m.get("unknown_names"):
                self.stdout.write(self.style.WARNING(f"  {name}: {unknown_names_text(m['unknown_names'])}"))
        with open(f"{opts['out']}/paper.md", encoding="utf-8") as fh:
            self.stdout.write(fh.read())
        n_files = sum(len(v) for v in rep["files"].values()) + 1
        self.stdout.write(self.style.SUCCESS(f"wrote {n_files} files to {opts['out']}"))
