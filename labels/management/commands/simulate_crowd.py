from django.core.management.base import BaseCommand

from catalog.core.taxonomy import closer
from catalog.http import command_dataset, command_errors
from catalog.selectors.taxonomy import class_names, relations
from crowd.simulator import MIXES, simulate_crowd
from labels.core.quality import macro_f1
from labels.services.create import release_create
from labels.services.diff import release_content
from labels.services.simulation import simulation_truth


class Command(BaseCommand):
    help = (
        "Simulated workers (diligent, careless, spammer, audio-biased, visual-biased) answer the dataset's "
        "batches through the real annotator services; scoring, rejection, re-posting and blocking run as in "
        "production. Optionally create a release at the end and score it against the truth."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True)
        parser.add_argument(
            "--truth",
            required=True,
            help="release name (or DATASET/NAME), VGGSounder-layout CSV, or 'original' (each clip's "
            "original labels, audible; for demos)",
        )
        parser.add_argument("--workers", type=int, default=50)
        parser.add_argument(
            "--profile",
            default="mixed",
            help=f"{', '.join(MIXES)} or NAME:WEIGHT,... (mixed = 50%% diligent, 20%% careless, "
            "10%% each spammer, audio-biased, visual-biased; calibrated = 70%% typical, 17%% careless, 10%% diligent, "
            "3%% spammer)",
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--proposals", type=int, default=10, help="proposals per clip when the simulator has to create the batches"
        )
        parser.add_argument("--max-assignments", type=int, default=None)
        parser.add_argument("--release", default=None, help="create a release with this name afterwards")

    def handle(self, *args, **opts):
        dataset = command_dataset(opts["dataset"])
        with command_errors():
            truth = simulation_truth(opts["truth"], class_names(), dataset)
            stats = simulate_crowd(
                dataset,
                opts["truth"],
                workers=opts["workers"],
                profile=opts["profile"],
                seed=opts["seed"],
                proposals_per_clip=opts["proposals"],
                max_assignments=opts["max_assignments"],
                log=self.stdout.write,
                truth=truth,
            )
            self.stdout.write(
                f"assignments {stats['assignments']}: approved {stats['approved']}, rejected "
                f"{stats['rejected']}; blocked workers {stats['blocked_workers']}; open batches left "
                f"{stats['open_batches_left']}"
            )
            for name, p in stats["by_profile"].items():
                if p["workers"]:
                    self.stdout.write(
                        f"  {name:<14} workers {p['workers']:>3}  assignments {p['assignments']:>4}  "
                        f"approved {p['approved']:>4}  rejected {p['rejected']:>4}  "
                        f"mean catch F1 {p['mean_catch_f1']}"
                    )
            if opts["release"]:
                release = release_create(dataset, opts["release"])
                truth, _meta = simulation_truth(opts["truth"], class_names(), dataset)
                syn, sup = relations()
                _flags, pred = release_content(release)  # every merged clip, labelled or not
                close = closer(syn, sup)
                gold = {v: {c: m for c, (m, _s) in close(truth[v]).items()} for v in pred if v in truth}
                macro, _ = macro_f1(pred, gold)
                ag = release.stats.get("agreement", {})
                self.stdout.write(
                    f"release {dataset.name}/{release.name}: {release.stats['clips']} clips, "
                    f"macro-F1 against the (closed) truth {macro:.4f}; Krippendorff alpha audible "
                    f"{ag.get('audible')}, visible {ag.get('visible')}"
                )
                card = release.stats.get("quality_card") or {}
                if card.get("available"):
                    self.stdout.write(
                        f"quality card ({card['evaluation']}): micro-F1 {card['micro_f1']} {card['micro_f1_ci95']}, "
                        f"macro-F1 {card['macro_f1']} {card['macro_f1_ci95']} on {card['clips']} gold clips"
                    )
