"""Where a dataset stands in the pipeline, for the steps page: clips, gold, batches (and those without catch
trials), model runs, releases."""

from __future__ import annotations

from catalog.models import Clip
from crowd.models import Batch
from crowd.selectors.batches import batches_gold_check, batches_without_catch_trials
from proposals.models import ModelRun


def dataset_steps(dataset) -> dict:
    clips = Clip.objects.filter(dataset=dataset)
    return {
        "clips": clips.count(),
        "unbatched": clips.filter(is_gold=False, batch_items__isnull=True).count(),
        "gold": batches_gold_check(dataset),
        "batches": Batch.objects.filter(dataset=dataset).count(),
        "without_catch": batches_without_catch_trials(dataset).count(),
        "runs": [
            (run.model_name, run.status)
            for run in ModelRun.objects.filter(dataset=dataset).select_related("checkpoint").order_by("pk")
        ],
    }
