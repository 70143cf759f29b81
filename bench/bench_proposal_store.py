"""Benchmark (not a test): storing a VGGSounder-sized proposal set in the database.

    .venv/bin/python bench/bench_proposal_store.py [--database-url postgres://postgres@127.0.0.1:5432/avcrowd_bench]
                                                   [--clips 15446] [--models 3] [--batch-size 5000]

Creates the database if it is missing, migrates it and loads the 309-class taxonomy, makes a dataset of
`--clips` clips, applies the default (VGGSounder) strategy to synthetic predictions of `--models` models
(bench_proposals.synthetic, with the taxonomy's real class names), then times what `make_proposals` does
after the strategy: one transaction that creates the ProposalSet and inserts every proposal with its
provenance (proposals.services.proposals_store). Prints rows/s, then checks the row count and one clip's
proposals against the in-memory result, and deletes the bench dataset.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
sys.path.insert(0, str(ROOT))

from bench_proposals import synthetic  # noqa: E402
from bench_saves import DEFAULT_DB, ensure_database, setup_django  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default=os.environ.get("DATABASE_URL", DEFAULT_DB))
    ap.add_argument("--clips", type=int, default=15446)
    ap.add_argument("--models", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=5000, help="rows per INSERT")
    args = ap.parse_args()
    ensure_database(args.database_url)
    setup_django(
        {
            "DATABASE_URL": args.database_url,
            "AVCROWD_DEV": "1",
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "LOG_LEVEL": "WARNING",
        }
    )
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
