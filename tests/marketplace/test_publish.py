import xml.etree.ElementTree as ET
from decimal import Decimal

import pytest
from botocore.stub import ANY
from django.core.management import CommandError, call_command

from catalog.errors import ValidationError
from crowd.models import Hit, MarketplaceCall, MarketplaceQualification
from crowd.services.publish import batches_publish, publish_plan, request_token

from .conftest import BASE, hit_response


def _expected_create(batch, token, *, reward="1.00", question=ANY, quals=ANY, max_assignments=3):
    return {
        "MaxAssignments": max_assignments,
        "AutoApprovalDelayInSeconds": 3 * 24 * 3600,
        "LifetimeInSeconds": 7 * 24 * 3600,
        "AssignmentDurationInSeconds": 3600,
        "Reward": reward,
        "Title": ANY,
        "Keywords": ANY,
        "Description": ANY,
        "Question": question,
        "RequesterAnnotation": str(batch.uuid),
        "QualificationRequirements": quals,
        "UniqueRequestToken": token,
    }


def test_dry_run_prints_hits_and_cost_and_sends_nothing(dataset, batches, mturk_stub):
    lines = []
    result = batches_publish(dataset, dry_run=True, reward=Decimal("1.00"), echo=lines.append)
    text = "\n".join(lines)
    # 3 assignments x ($1.00 + 20 % fee) per batch
    assert f"batch {batches[0].uuid}" in text and "= $3.60 incl. fees" in text
    assert f"total ${Decimal('3.60') * len(batches)}" in text
    assert "<ExternalURL>" in text  # shows the question it would post
    assert result.created == [] and Hit.objects.count() == 0 and MarketplaceCall.objects.count() == 0


def test_publish_creates_hits_with_external_question_and_qualifications(dataset, batches, mturk_stub):
    batch = batches[0]
    quals = [
        {
            "QualificationTypeId": "000000000000000000L0",
            "Comparator": "GreaterThanOrEqualTo",
            "IntegerValues": [98],
            "ActionsGuarded": "DiscoverPreviewAndAccept",
        },
        {
            "QualificationTypeId": "00000000000000000040",
            "Comparator": "GreaterThanOrEqualTo",
            "IntegerValues": [500],
            "ActionsGuarded": "DiscoverPreviewAndAccept",
        },
        {
            "QualificationTypeId": "00000000000000000071",
            "Comparator": "In",
            "LocaleValues": [{"Country": "US"}],
            "ActionsGuarded": "DiscoverPreviewAndAccept",
        },
    ]
    question = (
        '<ExternalQuestion xmlns="http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/'
        f'2006-07-14/ExternalQuestion.xsd"><ExternalURL>{BASE}/hit/{batch.uuid}/</ExternalURL>'
        "<FrameHeight>0</FrameHeight></ExternalQuestion>"
    )
    mturk_stub.add(
        "CreateHIT",
        hit_response("HIT-A"),
        _expected_create(batch, request_token(batch, 1), question=question, quals=quals),
    )
    result = batches_publish(dataset, batches=[batch], reward=Decimal("1.00"))
    hit = Hit.objects.get()
    assert result.created == [hit]
    assert (hit.external_id, hit.status, hit.sandbox, hit.max_assignments) == ("HIT-A", "open", True, 3)
    assert MarketplaceCall.objects.filter(operation="CreateHIT", ok=True, hit=hit).count() == 1
    # a second publish finds nothing left to publish
    with pytest.raises(ValidationError, match="already published"):
        publish_plan(dataset, batches=[batch])


def test_masters_blocked_qualification_created_once_and_required(dataset, batches, mturk_stub, settings):
    settings.MTURK_USE_BLOCKED_QUALIFICATION = True
    from crowd.services.publish import HitSettings

    batch = batches[0]
    mturk_stub.add(
        "CreateQualificationType",
        {"QualificationType": {"QualificationTypeId": "QBLOCK"}},
        {
            "Name": "avcrowd: blocked by requester",
            "Keywords": "avcrowd",
            "Description": ANY,
            "QualificationTypeStatus": "Active",
        },
    )
    seen = {}

    def check(quals):
        seen["q"] = quals
        return True

    mturk_stub.add("CreateHIT", hit_response("HIT-M"), _expected_create(batch, request_token(batch, 1)))
    batches_publish(
        dataset,
        batches=[batch],
        reward=Decimal("1.00"),
        sandbox=True,
        hit_settings=HitSettings.from_settings(masters=True),
    )
    call = MarketplaceCall.objects.get(operation="CreateHIT")
    ids = [q["QualificationTypeId"] for q in call.request["QualificationRequirements"]]
    assert ids[0] == "2ARFPLSP75KLA8M8DH1HTEQVJT3SY6"  # sandbox Masters
    assert "QBLOCK" in ids
    assert MarketplaceQualification.objects.get(sandbox=True).qualification_type_id == "QBLOCK"
    assert Hit.objects.get().masters is True


def test_over_budget_is_refused_before_any_call(make_dataset, mturk_stub):
    from crowd.services.batches import batches_create

    ds = make_dataset(name="poor", budget_usd=Decimal("5.00"))
    batches_create(ds)
    with pytest.raises(ValidationError) as err:
        batches_publish(ds, reward=Decimal("2.00"), sandbox=False)
    assert "over budget" in err.value.message and "$5.00" in err.value.message
    assert Hit.objects.count() == 0


def test_publish_without_proposals_or_gold_is_refused(dataset, batches, mturk_stub):
    item = batches[0].items.filter(is_gold=False).first()
    item.proposals = []
    item.save()
    gold = batches[0].items.filter(is_gold=True)
    gold.update(is_gold=False, proposals=["dog barking"])
    with pytest.raises(ValidationError) as err:
        publish_plan(dataset, batches=[batches[0]])
    text = "\n".join(err.value.details)
    assert "without proposals" in text and item.clip.video_id in text
    assert "no gold clips" in text


def test_external_question_needs_https(dataset, batches, mturk_stub, settings):
    settings.PUBLIC_BASE_URL = "http://127.0.0.1:8000"
    with pytest.raises(ValidationError, match="PUBLIC_BASE_URL"):
        batches_publish(dataset, reward=Decimal("1.00"))


def test_rerun_after_crash_reuses_the_token_and_finds_the_hit(dataset, batches, mturk_stub):
    batch = batches[0]
    # a previous run created the HIT on MTurk, then crashed before recording it: the row is still pending
    Hit.objects.create(
        batch=batch,
        reward=Decimal("1.00"),
        max_assignments=3,
        target_assignments=3,
        unique_request_token=request_token(batch, 1),
        sandbox=True,
    )
    mturk_stub.error(
        "CreateHIT",
        "RequestError",
        'The idempotency token "x" has already been processed. (1626172412406)',
        expected=_expected_create(batch, request_token(batch, 1)),
    )
    mturk_stub.add(
        "ListHITs",
        {"HITs": [{"HITId": "OTHER", "RequesterAnnotation": "someone else"}], "NextToken": "p2"},
        {"MaxResults": 100},
    )
    mturk_stub.add(
        "ListHITs",
        {"HITs": [{"HITId": "HIT-OLD", "HITTypeId": "T", "RequesterAnnotation": str(batch.uuid)}]},
        {"MaxResults": 100, "NextToken": "p2"},
    )
    result = batches_publish(dataset, batches=[batch], reward=Decimal("1.00"))
    assert [h.external_id for h in result.created] == ["HIT-OLD"]
    assert Hit.objects.filter(batch=batch).count() == 1


def test_one_failed_hit_does_not_stop_the_others(make_dataset, mturk_stub):
    from crowd.services.batches import batches_create

    ds = make_dataset(name="two", n_regular=6, n_gold=2)
    b1, b2 = sorted(batches_create(ds), key=lambda b: (b.created_at, b.id))
    mturk_stub.error(
        "CreateHIT",
        "ParameterValidationError",
        "Reward is not valid",
        expected=_expected_create(b1, request_token(b1, 1)),
    )
    mturk_stub.add("CreateHIT", hit_response("HIT-2"), _expected_create(b2, request_token(b2, 1)))
    result = batches_publish(ds, reward=Decimal("1.00"))
    assert [h.external_id for h in result.created] == ["HIT-2"]
    assert result.failed[0][0] == str(b1.uuid) and "Reward is not valid" in result.failed[0][1]
    assert Hit.objects.get(batch=b1).status == "failed"
    # the failed batch can be published again, with a new token (attempt 2)
    mturk_stub.add("CreateHIT", hit_response("HIT-1"), _expected_create(b1, request_token(b1, 2)))
    assert [h.external_id for h in batches_publish(ds, reward=Decimal("1.00")).created] == ["HIT-1"]


def test_html_mode_embeds_clip_urls_and_proposals(dataset, batches, mturk_stub, taxonomy):
    batch = batches[0]
    mturk_stub.add("CreateHIT", hit_response("HIT-H"), _expected_create(batch, request_token(batch, 1)))
    batches_publish(dataset, batches=[batch], reward=Decimal("1.00"), mode="html")
    xml = MarketplaceCall.objects.get(operation="CreateHIT").request["Question"]
    root = ET.fromstring(xml)
    assert root.tag.endswith("HTMLQuestion") and "2011-11-11/HTMLQuestion.xsd" in root.tag
    html = root.find("{*}HTMLContent").text
    assert "crowd-html-elements.js" in html and "<crowd-form" in html
    for item in batch.items.select_related("clip"):
        assert item.clip.media_url in html
        for name in item.proposals:
            assert name in html
    assert Hit.objects.get().mode == "html"


def test_command_dry_run_and_unknown_dataset(dataset, batches, mturk_stub, capsys):
    call_command("publish_batches", "--dataset", dataset.name, "--dry-run", "--reward", "1.00")
    out = capsys.readouterr().out
    assert "dry run:" in out and "nothing was sent" in out and "sandbox" in out
    with pytest.raises(CommandError, match="no dataset named 'nope'"):
        call_command("publish_batches", "--dataset", "nope", "--dry-run")


def test_command_reports_missing_credentials(dataset, batches, monkeypatch):
    from crowd.marketplace import MarketplaceConfigError, mturk

    def no_creds(sandbox):
        raise MarketplaceConfigError(mturk.CREDENTIALS_MESSAGE)

    monkeypatch.setattr(mturk, "client_factory", no_creds)
    with pytest.raises(CommandError, match="AWS_ACCESS_KEY_ID"):
        call_command("publish_batches", "--dataset", dataset.name, "--reward", "1.00")
    assert Hit.objects.filter(external_id__gt="").count() == 0
