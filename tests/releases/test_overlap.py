"""Adaptive overlap: which clips get another annotator (labels.core.overlap), the plan_overlap command and the
/ops/<dataset>/overlap/ page, down to batches that take just the votes a clip needs."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from catalog.errors import Forbidden
from catalog.models import Clip
from crowd.models import Batch, BatchItem
from crowd.services.assignments import assignment_start
from labels.core.overlap import plan_overlap
from labels.core.votes import Votes

CLASSES = ["dog barking", "cat meowing", "playing piano", "rain"]


def test_clips_stop_at_two_when_their_annotators_agree_and_get_more_while_unsure():
    same = [("dog barking", True, False)]
    annotations = [
        # agree: done at 2
        {"clip": "agree", "worker": "a", "labels": same},
        {"clip": "agree", "worker": "b", "labels": same},
        # disagree: one more
        {"clip": "split", "worker": "a", "labels": same},
        {"clip": "split", "worker": "b", "labels": [("rain", True, True)]},
        # one vote: one more whatever it says
        {"clip": "one", "worker": "a", "labels": same},
        # disagreeing but at the maximum: done
        *({"clip": "full", "worker": w, "labels": [(c, True, False)]} for w, c in zip("abc", CLASSES)),
    ]
    votes, _ = Votes.from_records(["agree", "split", "one", "full"], CLASSES, annotations)
    plan = plan_overlap(votes, min_votes=2, max_votes=3, max_expected_errors=0.0)
    assert plan.need.tolist() == [False, True, True, False]
    assert plan.votes.tolist() == [2, 2, 1, 3]
    assert plan.uncertainty[1] > 0.5  # a 1-1 split is about a coin toss on two atoms
    # without the unanimity rule, an agreeing pair still stops when the merge is sure enough
    loose = plan_overlap(votes, min_votes=2, max_votes=3, max_expected_errors=2.0, stop_when_unanimous=False)
    assert loose.need.tolist() == [False, False, True, False]
    with pytest.raises(ValueError, match="min_votes <= max_votes"):
        plan_overlap(votes, min_votes=4, max_votes=3)


@pytest.fixture
def waiting(crowd):
    ds, clips, workers = crowd
    Batch.objects.filter(dataset=ds).update(status=Batch.CLOSED)  # every earlier batch has its annotators
    clips["d_clip"] = Clip.objects.create(dataset=ds, video_id="d_clip")  # nobody has seen it yet
    return ds, clips, workers


def test_command_lists_the_waiting_clips_with_their_cost_and_queues_just_the_votes_needed(waiting):
    ds, clips, _w = waiting
    out = io.StringIO()
    call_command("plan_overlap", "--dataset", ds.name, "--max-errors", "0", stdout=out)
    text = out.getvalue()
    # a_clip (4 votes, split) and b_clip (3, split) need one more; d_clip needs two; c_clip's two agree; g is gold
    assert "rel: 4 clips; 1 done, 0 already queued, 3 waiting for 4 votes = 3 assignments" in text
    lines = {line.split()[0]: line for line in text.splitlines()[1:]}
    assert set(lines) == {"a_clip", "b_clip", "d_clip"} and lines["d_clip"].endswith("+2")
    assert "about $" in text
    # at most: a_clip 4 -> 5, b_clip 3 -> 5, d_clip 0 -> 5: rounds of 3, 2, 1, 1, 1 clips, each round one batch
    # (18 clips fit in a batch of 20 with 2 gold) = 5 assignments
    assert "finishing costs at most 5 assignments" in text
    before = set(Batch.objects.values_list("pk", flat=True))
    call_command("plan_overlap", "--dataset", ds.name, "--max-errors", "0", "--queue", stdout=out)
    new = Batch.objects.exclude(pk__in=before)
    wanted = {
        b.annotations_wanted: set(
            BatchItem.objects.filter(batch=b, is_gold=False).values_list("clip__video_id", flat=True)
        )
        for b in new
    }
    assert wanted == {1: {"a_clip", "b_clip"}, 2: {"d_clip"}}
    # the one-more batch takes one annotator, then refuses the next
    one_more = next(b for b in new if b.annotations_wanted == 1)
    assignment_start(one_more, backend="simulated", worker_external_id="n1", external_assignment_id="x1")
    with pytest.raises(Forbidden, match="already has all the annotators"):
        assignment_start(one_more, backend="simulated", worker_external_id="n2", external_assignment_id="x2")
    # planned again: those clips are queued now, nothing waits
    out = io.StringIO()
    call_command("plan_overlap", "--dataset", ds.name, "--max-errors", "0", stdout=out)
    assert "3 already queued, 0 waiting" in out.getvalue()


def test_command_refuses_bad_settings(waiting):
    ds, _c, _w = waiting
    with pytest.raises(CommandError, match="min_votes <= max_votes"):
        call_command("plan_overlap", "--dataset", ds.name, "--min-votes", "4", "--max-votes", "3", stdout=io.StringIO())
    with pytest.raises(CommandError, match="no dataset"):
        call_command("plan_overlap", "--dataset", "nope", stdout=io.StringIO())


def test_overlap_page_shows_waiting_clips_and_cost_and_queues_them(waiting, client):
    ds, _c, _w = waiting
    admin = get_user_model().objects.create_user("boss", password="x", is_staff=True)
    client.force_login(admin)
    page = client.get(f"/ops/{ds.name}/overlap/?max_errors=0").content.decode()
    assert "Adaptive overlap" in page and "<th>Waiting</th><td>3</td>" in page and "3 assignments, $" in page
    assert "<td>d_clip</td><td>0</td>" in page and "<td>+2</td>" in page
    assert f'href="/ops/{ds.name}/overlap/"' in client.get(f"/ops/{ds.name}/").content.decode()
    n = Batch.objects.count()
    r = client.post(f"/ops/{ds.name}/overlap/", {"max_errors": "0", "min_votes": "2", "max_votes": "5"}, follow=True)
    assert "queued 2 batches for 3 clips" in r.content.decode() and Batch.objects.count() == n + 2
    # a bad setting goes back with the reason and queues nothing
    r = client.post(f"/ops/{ds.name}/overlap/", {"min_votes": "0"}, follow=True)
    assert "min_votes" in r.content.decode() and Batch.objects.count() == n + 2


def test_a_dataset_nobody_has_annotated_yet_waits_for_min_votes_everywhere(taxonomy):
    from catalog.models import Dataset

    ds = Dataset.objects.create(name="fresh", batch_size=4, gold_per_batch=1)
    for i in range(5):
        Clip.objects.create(dataset=ds, video_id=f"n{i}")
    out = io.StringIO()
    call_command("plan_overlap", "--dataset", "fresh", stdout=out)
    # 5 clips x 2 votes; batches of 3 regular clips -> 2 batches x 2 assignments
    assert "fresh: 5 clips; 0 done, 0 already queued, 5 waiting for 10 votes = 4 assignments" in out.getvalue()
