from decimal import Decimal

import pytest

from crowd.marketplace import mturk


def test_fee_is_20_percent_below_10_assignments_and_40_from_10():
    assert mturk.fee_per_assignment(Decimal("1.00"), 9) == Decimal("0.20")
    assert mturk.fee_per_assignment(Decimal("1.00"), 10) == Decimal("0.40")
    assert mturk.fee_per_assignment(Decimal("1.00"), 3, masters=True) == Decimal("0.25")


def test_fee_has_a_one_cent_minimum():
    assert mturk.fee_per_assignment(Decimal("0.01"), 3) == Decimal("0.01")
    assert mturk.fee_per_assignment(Decimal("0.04"), 3) == Decimal("0.01")


def test_hit_cost_is_reward_plus_fee_times_assignments():
    # 3 x ($1.82 + $0.36) = $6.54
    assert mturk.hit_cost(Decimal("1.82"), 3) == Decimal("6.54")
    # 12 assignments: 40 % fee -> 12 x ($0.50 + $0.20)
    assert mturk.hit_cost(Decimal("0.50"), 12) == Decimal("8.40")


def test_default_reward_pays_federal_minimum_wage_rounded_up():
    assert mturk.default_reward(15) == Decimal("1.82")  # 15 min x $7.25/h = $1.8125
    assert mturk.default_reward(60) == Decimal("7.25")
    with pytest.raises(ValueError):
        mturk.default_reward(0)


def test_reward_for_a_batch_follows_seconds_per_clip(settings):
    from crowd.services.costs import reward_for_batch

    settings.MTURK_SECONDS_PER_CLIP = 45
    assert reward_for_batch(20) == Decimal("1.82")  # 20 clips x 45 s = 15 min
    settings.MTURK_SECONDS_PER_CLIP = 90
    assert reward_for_batch(20) == Decimal("3.63")  # 30 min


def test_qualification_ids_differ_between_sandbox_and_production():
    policy = mturk.QualificationPolicy(
        masters=True,
        min_approval_rate=98,
        min_approved_hits=1000,
        locales=("US", "CA"),
        blocked_qualification_id="QBLOCK",
    )
    prod = mturk.qualification_requirements(policy, sandbox=False)
    sand = mturk.qualification_requirements(policy, sandbox=True)
    assert prod[0]["QualificationTypeId"] == "2F1QJWKUDD8XADTFD2Q0G6UTO95ALH"
    assert sand[0]["QualificationTypeId"] == "2ARFPLSP75KLA8M8DH1HTEQVJT3SY6"
    by_id = {q["QualificationTypeId"]: q for q in prod}
    assert by_id["000000000000000000L0"]["IntegerValues"] == [98]
    assert by_id["00000000000000000040"]["IntegerValues"] == [1000]
    assert by_id["00000000000000000071"]["LocaleValues"] == [{"Country": "US"}, {"Country": "CA"}]
    assert by_id["QBLOCK"]["Comparator"] == "DoesNotExist"


def test_missing_credentials_name_the_variables(monkeypatch, tmp_path):
    from crowd.marketplace import MarketplaceConfigError

    for var in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(MarketplaceConfigError) as err:
        mturk.make_client(sandbox=True)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_DEFAULT_REGION"):
        assert name in err.value.message


def test_endpoints_and_override(settings, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    settings.MTURK_ENDPOINT_URL = ""
    assert mturk.make_client(True).meta.endpoint_url == "https://mturk-requester-sandbox.us-east-1.amazonaws.com"
    assert mturk.make_client(False).meta.endpoint_url == "https://mturk-requester.us-east-1.amazonaws.com"
    settings.MTURK_ENDPOINT_URL = "http://127.0.0.1:9999"
    assert mturk.make_client(False).meta.endpoint_url == "http://127.0.0.1:9999"


def test_only_rate_errors_are_retried():
    from botocore.exceptions import ClientError

    from crowd.marketplace.retry import is_retryable

    def err(code, msg):
        return ClientError({"Error": {"Code": code, "Message": msg}}, "CreateHIT")

    assert is_retryable(err("ThrottlingException", "slow down"))
    assert is_retryable(err("ServiceUnavailable", ""))
    assert is_retryable(err("RequestError", "You exceeded the maximum request rate"))
    assert not is_retryable(err("RequestError", "Cannot generate a HIT: Reward is not valid"))
    assert not is_retryable(err("ParameterValidationError", "bad"))
