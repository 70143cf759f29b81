"""Amazon Mechanical Turk through boto3's `mturk` client: endpoints, credentials, qualification requirements,
question XML, fees, and one logged, retried call wrapper. Services use `get_backend(sandbox)`; tests replace
`client_factory` with one that returns a client wrapped in botocore's Stubber."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from xml.sax.saxutils import escape

from django.conf import settings

from . import MarketplaceConfigError
from .retry import RetryPolicy, call_logged

SANDBOX_ENDPOINT = "https://mturk-requester-sandbox.us-east-1.amazonaws.com"
PRODUCTION_ENDPOINT = "https://mturk-requester.us-east-1.amazonaws.com"
REGION = "us-east-1"
SANDBOX_WORKER_URL = "https://workersandbox.mturk.com"
PRODUCTION_WORKER_URL = "https://worker.mturk.com"

# System qualification types (MTurk documentation, QualificationRequirement data structure).
MASTERS_SANDBOX = "2ARFPLSP75KLA8M8DH1HTEQVJT3SY6"
MASTERS_PRODUCTION = "2F1QJWKUDD8XADTFD2Q0G6UTO95ALH"
QUAL_PERCENT_APPROVED = "000000000000000000L0"
QUAL_NUMBER_APPROVED = "00000000000000000040"
QUAL_LOCALE = "00000000000000000071"

EXTERNAL_QUESTION_NS = (
    "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2006-07-14/ExternalQuestion.xsd"
)
HTML_QUESTION_NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2011-11-11/HTMLQuestion.xsd"
QUESTION_MAX_CHARS = 65535

US_MINIMUM_WAGE_PER_HOUR = Decimal("7.25")
MIN_FEE = Decimal("0.01")

CREDENTIALS_MESSAGE = (
    "MTurk credentials or region are missing: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE "
    "naming a profile in ~/.aws/credentials) and AWS_DEFAULT_REGION=us-east-1 (MTurk exists only in us-east-1). "
    "Nothing was sent to MTurk."
)


def setting(name: str, default=None):
    """A marketplace setting: Django settings first, then the environment, then the default."""
    value = getattr(settings, name, None)
    if value is None or value == "":
        value = os.environ.get(name)
    return default if value is None or value == "" else value


def endpoint_url(sandbox: bool) -> str:
    return setting("MTURK_ENDPOINT_URL") or (SANDBOX_ENDPOINT if sandbox else PRODUCTION_ENDPOINT)


def worker_site(sandbox: bool) -> str:
    return SANDBOX_WORKER_URL if sandbox else PRODUCTION_WORKER_URL


def make_client(sandbox: bool):
    """A boto3 `mturk` client for the sandbox or production, credentials from the standard AWS chain."""
    import boto3  # noqa: PLC0415 - boto3 is loaded on the first marketplace call, not by every web process
    from botocore.exceptions import BotoCoreError  # noqa: PLC0415 - as above

    try:
        session = boto3.session.Session()
        credentials = session.get_credentials()
    except BotoCoreError as exc:  # e.g. AWS_PROFILE naming a profile that does not exist
        raise MarketplaceConfigError(f"{CREDENTIALS_MESSAGE} ({exc})") from exc
    region = setting("MTURK_REGION") or session.region_name or REGION
    if credentials is None or not region:
        raise MarketplaceConfigError(CREDENTIALS_MESSAGE)
    if region != REGION:
        region = REGION  # MTurk's only region; a different AWS_DEFAULT_REGION (for S3) must not break it
    return session.client("mturk", region_name=region, endpoint_url=endpoint_url(sandbox))


client_factory = make_client


class MTurk:
    """One MTurk environment: every call retried on throttling and logged in MarketplaceCall."""

    backend = "mturk"

    def __init__(self, *, sandbox: bool, client=None, policy: RetryPolicy | None = None):
        self.sandbox = sandbox
        self.client = client if client is not None else client_factory(sandbox)
        self.policy = policy or default_policy()
        self._methods = {api: name for name, api in self.client.meta.method_to_api_mapping.items()}

    def call(self, operation: str, *, hit=None, **params):
        """operation: the API name, e.g. "CreateHIT"."""
        method = getattr(self.client, self._methods.get(operation) or _snake(operation))
        return call_logged(
            method, params, backend="mturk", operation=operation, sandbox=self.sandbox, hit=hit, policy=self.policy
        )

    def paginate(self, operation: str, key: str, *, hit=None, **params):
        """All items under `key` of a paginated List* call (NextToken), each page a logged call."""
        token = None
        while True:
            page_params = dict(params)
            if token:
                page_params["NextToken"] = token
            page = self.call(operation, hit=hit, **page_params)
            yield from page.get(key, [])
            token = page.get("NextToken")
            if not token:
                return


_policy_factory = None


def default_policy() -> RetryPolicy:
    return _policy_factory() if _policy_factory else RetryPolicy()


def get_backend(sandbox: bool) -> MTurk:
    return MTurk(sandbox=sandbox)


def _snake(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and (not name[i - 1].isupper() or (i + 1 < len(name) and name[i + 1].islower())):
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


# --- money ---------------------------------------------------------------------------------------


def to_cents(value) -> Decimal:
    return Decimal(value).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def default_reward(expected_minutes: float, wage_per_hour: Decimal = US_MINIMUM_WAGE_PER_HOUR) -> Decimal:
    """Reward that pays at least `wage_per_hour` for the expected work time (rounded up to the cent)."""
    if expected_minutes <= 0:
        raise ValueError(f"expected minutes must be > 0, got {expected_minutes}")
    raw = Decimal(str(expected_minutes)) / Decimal(60) * wage_per_hour
    return raw.quantize(Decimal("0.01"), rounding=ROUND_CEILING)


def fee_rate(max_assignments: int, masters: bool = False) -> Decimal:
    """MTurk commission: 20 %, 40 % for HITs with 10 or more assignments; Masters add 5 %."""
    rate = Decimal("0.40") if max_assignments >= 10 else Decimal("0.20")
    return rate + (Decimal("0.05") if masters else Decimal(0))


def fee_per_assignment(reward: Decimal, max_assignments: int, masters: bool = False) -> Decimal:
    return max(MIN_FEE, to_cents(Decimal(reward) * fee_rate(max_assignments, masters)))


def hit_cost(
    reward: Decimal, assignments: int, *, max_assignments: int | None = None, masters: bool = False
) -> Decimal:
    """What `assignments` assignments of a HIT cost the requester: reward plus fee, per assignment."""
    per = Decimal(reward) + fee_per_assignment(reward, max_assignments or assignments, masters)
    return to_cents(per * assignments)


def bonus_cost(amount: Decimal) -> Decimal:
    """Bonuses carry a 20 % fee (minimum $0.01)."""
    return to_cents(Decimal(amount) + max(MIN_FEE, to_cents(Decimal(amount) * Decimal("0.20"))))


# --- qualifications and questions ----------------------------------------------------------------


@dataclass
class QualificationPolicy:
    masters: bool = False
    min_approval_rate: int | None = 98
    min_approved_hits: int | None = 500
    locales: tuple[str, ...] = ("US",)
    blocked_qualification_id: str | None = None
    # restrict HITs to workers we qualified (labels' qualify_workers: value = catch F1 x 100), e.g. >= 60
    required_qualification_id: str | None = None
    required_min: int = 0


def qualification_requirements(policy: QualificationPolicy, *, sandbox: bool) -> list[dict]:
    guard = "DiscoverPreviewAndAccept"
    reqs = []
    if policy.masters:
        reqs.append(
            {
                "QualificationTypeId": MASTERS_SANDBOX if sandbox else MASTERS_PRODUCTION,
                "Comparator": "Exists",
                "ActionsGuarded": guard,
            }
        )
    if policy.min_approval_rate is not None:
        reqs.append(
            {
                "QualificationTypeId": QUAL_PERCENT_APPROVED,
                "Comparator": "GreaterThanOrEqualTo",
                "IntegerValues": [int(policy.min_approval_rate)],
                "ActionsGuarded": guard,
            }
        )
    if policy.min_approved_hits is not None:
        reqs.append(
            {
                "QualificationTypeId": QUAL_NUMBER_APPROVED,
                "Comparator": "GreaterThanOrEqualTo",
                "IntegerValues": [int(policy.min_approved_hits)],
                "ActionsGuarded": guard,
            }
        )
    if policy.locales:
        values = []
        for loc in policy.locales:
            country, _, sub = loc.partition("-")
            values.append({"Country": country, **({"Subdivision": sub} if sub else {})})
        reqs.append(
            {"QualificationTypeId": QUAL_LOCALE, "Comparator": "In", "LocaleValues": values, "ActionsGuarded": guard}
        )
    if policy.blocked_qualification_id:
        reqs.append(
            {
                "QualificationTypeId": policy.blocked_qualification_id,
                "Comparator": "DoesNotExist",
                "ActionsGuarded": guard,
            }
        )
    if policy.required_qualification_id:
        reqs.append(
            {
                "QualificationTypeId": policy.required_qualification_id,
                "Comparator": "GreaterThanOrEqualTo",
                "IntegerValues": [int(policy.required_min)],
                "ActionsGuarded": guard,
            }
        )
    return reqs


def external_question(url: str, frame_height: int = 0) -> str:
    return (
        f'<ExternalQuestion xmlns="{EXTERNAL_QUESTION_NS}">'
        f"<ExternalURL>{escape(url)}</ExternalURL><FrameHeight>{int(frame_height)}</FrameHeight>"
        "</ExternalQuestion>"
    )


def html_question(html: str, frame_height: int = 0) -> str:
    if "]]>" in html:
        raise ValueError("HTML content must not contain ']]>'")
    xml = (
        f'<HTMLQuestion xmlns="{HTML_QUESTION_NS}"><HTMLContent><![CDATA[{html}]]></HTMLContent>'
        f"<FrameHeight>{int(frame_height)}</FrameHeight></HTMLQuestion>"
    )
    if len(xml) > QUESTION_MAX_CHARS:
        raise ValueError(
            f"the HTMLQuestion is {len(xml)} characters; MTurk allows {QUESTION_MAX_CHARS}. "
            "Use smaller batches, fewer proposals, or ExternalQuestion mode"
        )
    return xml


def expected_minutes(n_clips: int, seconds_per_clip: float) -> float:
    return max(1.0, math.ceil(n_clips * seconds_per_clip / 6) / 10)
