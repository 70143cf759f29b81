"""End to end: publish a batch as an MTurk HIT (Stubber) -> a worker completes the real HIT page in headless
Chromium -> sync (Stubber lists the submissions) -> approve / reject with feedback -> re-post the rejected slot."""

import xml.etree.ElementTree as ET
from decimal import Decimal
from urllib.parse import urlencode, urlparse

import pytest
from botocore.stub import ANY

from crowd.models import Assignment, Hit, MarketplaceCall
from crowd.services.assignments import answer_save, assignment_start
from crowd.services.publish import batches_publish, request_token
from crowd.services.sync import marketplace_sync

from .conftest import hit_response

pytestmark = pytest.mark.browser


@pytest.fixture
def e2e_page(browser, live_server, settings, transactional_db, taxonomy, clip_factory):
    from tests.browser import urls
    from tests.browser.conftest import HitPage, make_dataset

    settings.ROOT_URLCONF = "tests.browser.urls"  # the real URLs plus a stand-in for MTurk's externalSubmit
    urls.RECEIVED.clear()
    dataset, batches = make_dataset(clip_factory, name="e2e")
    dataset.budget_usd = Decimal("50")
    dataset.save()
    return HitPage(browser, live_server.url), dataset, batches[0], urls.RECEIVED


def test_publish_work_sync_decide_repost(e2e_page, live_server, mturk_stub):
    page, dataset, batch, received = e2e_page

    # 1. publish: one HIT, ExternalQuestion pointing at the HIT page
    mturk_stub.add(
        "CreateHIT",
        hit_response("HIT-E2E"),
        {
            "MaxAssignments": 3,
            "AutoApprovalDelayInSeconds": ANY,
            "LifetimeInSeconds": ANY,
            "AssignmentDurationInSeconds": ANY,
            "Reward": "0.50",
            "Title": ANY,
            "Keywords": ANY,
            "Description": ANY,
            "Question": ANY,
            "RequesterAnnotation": str(batch.uuid),
            "QualificationRequirements": ANY,
            "UniqueRequestToken": request_token(batch, 1),
        },
    )
    result = batches_publish(dataset, batches=[batch], reward=Decimal("0.50"))
    assert result.plan.total == Decimal("1.80")  # 3 x ($0.50 + $0.10)
    question = MarketplaceCall.objects.get(operation="CreateHIT").request["Question"]
    external_url = ET.fromstring(question).find("{*}ExternalURL").text
    assert external_url == f"https://avcrowd.example.org/hit/{batch.uuid}/"

    # 2. a worker opens the HIT the way MTurk frames it (our server stands in for the public host)
    params = {"assignmentId": "ASG-GOOD", "hitId": "HIT-E2E", "workerId": "W-GOOD", "turkSubmitTo": live_server.url}
    page.driver.get(f"{live_server.url}{urlparse(external_url).path}?{urlencode(params)}")
    page.wait(lambda d: d.find_element("id", "hit-app").get_attribute("data-state") != "loading")
    page.start()
    page.label_all(tick="dog barking audible")  # the gold clip is dog barking (AV): F1 2/3
    page.wait_saved()
    page.el("btn-submit").click()
    page.wait(lambda d: d.find_elements("id", "mturk-received"), "the MTurk hand-off form was not posted")
    submitted_to_mturk = Assignment.objects.get(external_assignment_id="ASG-GOOD")
    # assignmentId and one answer field (MTurk asks for at least one): the avcrowd assignment
    assert received == [
        {"method": "POST", "assignmentId": "ASG-GOOD", "avcrowdAssignment": str(submitted_to_mturk.uuid)}
    ]

    # a second, careless worker (through the same services the page uses): nothing ticked anywhere
    careless = assignment_start(
        batch, backend="mturk", worker_external_id="W-BAD", external_assignment_id="ASG-BAD", hit_id="HIT-E2E"
    )
    for item in batch.items.select_related("clip"):
        answer_save(
            careless,
            item.clip.video_id,
            {
                "background_music": False,
                "voice_over": False,
                "static_image": False,
                "played": True,
                "watch_seconds": 1.0,
                "labels": [],
            },
        )

    # 3. sync: MTurk lists both submissions (paginated) -> approve, reject with feedback, re-post one slot
    def submitted(aid, worker):
        return {"AssignmentId": aid, "WorkerId": worker, "HITId": "HIT-E2E", "AssignmentStatus": "Submitted"}

    listing = {"HITId": "HIT-E2E", "MaxResults": 100, "AssignmentStatuses": ["Submitted", "Approved", "Rejected"]}
    mturk_stub.add(
        "ListAssignmentsForHIT", {"Assignments": [submitted("ASG-GOOD", "W-GOOD")], "NextToken": "n"}, listing
    )
    mturk_stub.add("ApproveAssignment", {}, {"AssignmentId": "ASG-GOOD", "RequesterFeedback": ANY})
    mturk_stub.add(
        "ListAssignmentsForHIT", {"Assignments": [submitted("ASG-BAD", "W-BAD")]}, {**listing, "NextToken": "n"}
    )
    mturk_stub.add("RejectAssignment", {}, {"AssignmentId": "ASG-BAD", "RequesterFeedback": ANY})
    hit = Hit.objects.get(external_id="HIT-E2E")
    mturk_stub.add(
        "CreateAdditionalAssignmentsForHIT",
        {},
        {"HITId": "HIT-E2E", "NumberOfAdditionalAssignments": 1, "UniqueRequestToken": f"avcrowd-repost-{hit.pk}-1"},
    )
    summary = marketplace_sync()
    assert (summary["approved"], summary["rejected"], summary["reposted"]) == (1, 1, 1)

    good = Assignment.objects.get(external_assignment_id="ASG-GOOD")
    bad = Assignment.objects.get(external_assignment_id="ASG-BAD")
    assert good.status == "approved" and good.catch_f1 == pytest.approx(2 / 3)
    assert good.answers.count() == 4
    assert bad.status == "rejected" and bad.catch_f1 == 0.0
    reject = MarketplaceCall.objects.get(operation="RejectAssignment")
    assert "quality-control clips" in reject.request["RequesterFeedback"]
    hit.refresh_from_db()
    assert hit.max_assignments == 4 and hit.status == "open"
    batch.refresh_from_db()
    assert batch.status == "open"  # the rejected slot is back on the market
