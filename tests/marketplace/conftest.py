"""Fixtures of the marketplace tests: a small dataset with batches, and an MTurk client behind botocore's Stubber
(which checks every call's parameters against botocore's MTurk service model)."""

import datetime as dt
import random
from decimal import Decimal

import boto3
import pytest
from botocore.stub import Stubber

BASE = "https://avcrowd.example.org"


@pytest.fixture(autouse=True)
def _settings(settings):
    settings.PUBLIC_BASE_URL = BASE
    settings.MTURK_ENDPOINT_URL = ""
    settings.MTURK_USE_BLOCKED_QUALIFICATION = False
    settings.MTURK_BLOCK_LIST = []
    settings.MTURK_BONUS = None


@pytest.fixture
def make_dataset(make_crowd_dataset):
    def make(name="mt", n_regular=3, n_gold=2, **policy):
        policy.setdefault("budget_usd", Decimal("100"))
        policy.setdefault("batch_size", 4)
        policy.setdefault("gold_per_batch", 1)
        return make_crowd_dataset(name, n_regular, n_gold, **policy)

    return make


@pytest.fixture
def dataset(make_dataset):
    return make_dataset()


@pytest.fixture
def batches(dataset):
    from crowd.services.batches import batches_create

    out = batches_create(dataset, rng=random.Random(3))
    assert out
    return out


class Stubbed:
    """An MTurk client wrapped in a Stubber, plus the sleeps the retry policy asked for."""

    def __init__(self):
        self.client = boto3.client(
            "mturk",
            region_name="us-east-1",
            aws_access_key_id="AKIDTEST",
            aws_secret_access_key="secret",
            endpoint_url="https://mturk-requester-sandbox.us-east-1.amazonaws.com",
        )
        self.stub = Stubber(self.client)
        self.sleeps = []
        self.methods = {api: name for name, api in self.client.meta.method_to_api_mapping.items()}

    def add(self, operation, response, expected=None):
        self.stub.add_response(self.methods[operation], response, expected)

    def error(self, operation, code, message="", expected=None, http_status=400):
        self.stub.add_client_error(
            self.methods[operation],
            service_error_code=code,
            service_message=message,
            http_status_code=http_status,
            expected_params=expected,
        )


@pytest.fixture
def mturk_stub(monkeypatch):
    from crowd.marketplace import mturk
    from crowd.marketplace.retry import RetryPolicy

    s = Stubbed()
    monkeypatch.setattr(mturk, "client_factory", lambda sandbox: s.client)
    monkeypatch.setattr(
        mturk, "_policy_factory", lambda: RetryPolicy(max_attempts=4, sleep=s.sleeps.append, rng=random.Random(0))
    )
    with s.stub:
        yield s
        s.stub.assert_no_pending_responses()


def hit_response(hit_id="HIT1", **extra):
    return {
        "HIT": {
            "HITId": hit_id,
            "HITTypeId": "TYPE1",
            "Expiration": dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc),
            **extra,
        }
    }
