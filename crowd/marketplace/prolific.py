"""Prolific backend through its REST API (https://api.prolific.com/api/v1/ by default; PROLIFIC_API_URL overrides,
PROLIFIC_API_TOKEN authenticates). One study per batch; the study URL carries Prolific's URL parameters. Studies
carry filters (approval rate, approvals, countries, participant groups as block list / allow list); bonuses go
through the bulk bonus API (set up, then pay once); rejections use FAILED_CHECK for failed check clips."""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request
from dataclasses import dataclass

from crowd.selectors.crowd import prolific_completion_code

from . import MarketplaceConfigError, MarketplaceError
from .mturk import setting
from .retry import RetryPolicy, call_logged

DEFAULT_API_URL = "https://api.prolific.com/api/v1/"
URL_PARAMS = "PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"


class ProlificHTTPError(MarketplaceError):
    def __init__(self, status: int, body: str, method: str, path: str):
        super().__init__(f"Prolific {method} {path} answered HTTP {status}: {body[:300]}", code=str(status))
        self.status = status
        self.retryable = status == 429 or status >= 500


class Prolific:
    backend = "prolific"
    sandbox = False

    def __init__(
        self,
        *,
        base_url: str | None = None,
        token: str | None = None,
        policy: RetryPolicy | None = None,
        timeout: float = 30,
    ):
        self.base_url = (base_url or setting("PROLIFIC_API_URL", DEFAULT_API_URL)).rstrip("/") + "/"
        self.token = token or setting("PROLIFIC_API_TOKEN")
        if not self.token:
            raise MarketplaceConfigError(
                "Prolific API token is missing: set PROLIFIC_API_TOKEN (Prolific > "
                "Settings > Go to API token page). Nothing was sent to Prolific."
            )
        self.policy = policy or RetryPolicy()
        self.timeout = timeout

    def _request(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.base_url + path.lstrip("/"),
            data=data,
            method=method,
            headers={
                "Authorization": f"Token {self.token}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                text = resp.read().decode() or "{}"
        except urllib.error.HTTPError as exc:
            raise ProlificHTTPError(exc.code, exc.read().decode(errors="replace"), method, path) from exc
        return json.loads(text)

    def call(
        self, operation: str, method: str, path: str, body: dict | None = None, *, hit=None, retry_if=None
    ) -> dict:
        return call_logged(
            lambda **kw: self._request(**kw),
            {"method": method, "path": path, "body": body},
            backend="prolific",
            operation=operation,
            sandbox=False,
            hit=hit,
            policy=self.policy,
            retry_if=retry_if,
        )

    # --- studies ---
    def create_study(
        self,
        *,
        name: str,
        description: str,
        external_url: str,
        completion_code: str,
        places: int,
        minutes: int,
        reward_cents: int,
        filters: list[dict] | None = None,
        internal_name: str | None = None,
        hit=None,
    ) -> dict:
        sep = "&" if "?" in external_url else "?"
        body = {
            "name": name,
            "internal_name": internal_name or name,
            "description": description,
            "external_study_url": f"{external_url}{sep}{URL_PARAMS}",
            "prolific_id_option": "url_parameters",
            "completion_codes": [
                {"code": completion_code, "code_type": "COMPLETED", "actions": [{"action": "MANUALLY_REVIEW"}]}
            ],
            "total_available_places": places,
            "estimated_completion_time": minutes,
            "reward": reward_cents,
            "device_compatibility": ["desktop"],
            "peripheral_requirements": ["audio"],
        }
        if filters:
            body["filters"] = filters
        return self.call("CreateStudy", "POST", "studies/", body, hit=hit)

    def get_study(self, study_id: str, *, hit=None) -> dict:
        return self.call("GetStudy", "GET", f"studies/{study_id}/", hit=hit)

    def publish_study(self, study_id: str, *, hit=None) -> dict:
        return self.call("PublishStudy", "POST", f"studies/{study_id}/transition/", {"action": "PUBLISH"}, hit=hit)

    def set_places(self, study_id: str, places: int, *, hit=None) -> dict:
        return self.call("UpdateStudy", "PATCH", f"studies/{study_id}/", {"total_available_places": places}, hit=hit)

    # --- submissions ---
    def submissions(self, study_id: str, *, hit=None) -> list[dict]:
        out, path = [], f"studies/{study_id}/submissions/"
        while path:
            page = self.call("ListSubmissions", "GET", path, hit=hit)
            out += page.get("results", [])
            nxt = (page.get("_links", {}).get("next") or {}).get("href")
            path = nxt[len(self.base_url) :] if nxt and nxt.startswith(self.base_url) else None
        return out

    def approve(self, submission_id: str, *, hit=None) -> dict:
        return self.call(
            "ApproveSubmission", "POST", f"submissions/{submission_id}/transition/", {"action": "APPROVE"}, hit=hit
        )

    def reject(self, submission_id: str, message: str, *, category: str = "FAILED_CHECK", hit=None) -> dict:
        """REJECT with a category (FAILED_CHECK: the check clips) and a message of 100+ characters, as Prolific
        requires; a short message is completed with what the check clips are."""
        message = message or "Your answers on the check clips did not meet the required quality."
        if len(message) < MIN_REJECT_MESSAGE:
            message = (
                message + " " + "The check clips in this study have known answers; yours differed "
                "from them too much to accept the submission."
            )
        return self.call(
            "RejectSubmission",
            "POST",
            f"submissions/{submission_id}/transition/",
            {"action": "REJECT", "message": message[:MAX_REJECT_MESSAGE], "rejection_category": category},
            hit=hit,
        )

    # --- bonuses: set up (safe to repeat: nothing is paid), then pay (never repeated) ---
    def bonus_setup(self, study_id: str, rows: list[tuple[str, str]], *, hit=None) -> dict:
        """POST submissions/bonus-payments/: one bulk bonus for (participant id, amount in the study currency)
        rows. Returns {"id", "total_amount", ...}; nothing is paid yet."""
        csv_bonuses = "".join(f"{pid},{amount}\n" for pid, amount in rows)
        return self.call(
            "SetUpBonuses",
            "POST",
            "submissions/bonus-payments/",
            {"study_id": study_id, "csv_bonuses": csv_bonuses},
            hit=hit,
        )

    def bonus_pay(self, bulk_id: str, *, hit=None) -> dict:
        """POST bulk-bonus-payments/{id}/pay/. Prolific documents it as not idempotent: it is sent once, retried
        only on 429 (rate limited: not processed)."""
        return self.call(
            "PayBonuses",
            "POST",
            f"bulk-bonus-payments/{bulk_id}/pay/",
            {},
            hit=hit,
            retry_if=lambda exc: getattr(exc, "status", None) == 429,
        )

    # --- participant groups (block list, allow list) ---
    def group_create(self, name: str, *, workspace_id: str, description: str = "") -> dict:
        body = {"name": name, "workspace_id": workspace_id, "description": description}
        return self.call("CreateParticipantGroup", "POST", "participant-groups/", body)

    def group_add(self, group_id: str, participant_ids: list[str]) -> dict:
        return self.call(
            "AddToParticipantGroup",
            "POST",
            f"participant-groups/{group_id}/participants/",
            {"participant_ids": list(participant_ids)},
        )


MIN_REJECT_MESSAGE = 100
MAX_REJECT_MESSAGE = 1000


@dataclass
class ProlificPolicy:
    """Who may take our studies. Prolific's filters: approval_rate / approval_numbers (range), countries
    (current-country-of-residence choice ids, as GET /api/v1/filters/ lists them), and participant groups as
    block list and allow list."""

    min_approval_rate: int | None = 95
    min_approvals: int | None = 50
    countries: tuple[str, ...] = ()
    blocklist_group: str | None = None
    allowlist_group: str | None = None

    @classmethod
    def from_settings(cls, **overrides) -> "ProlificPolicy":
        conf = dict(setting("PROLIFIC_FILTERS", {}) or {})
        conf.update({k: v for k, v in overrides.items() if v is not None})
        if "countries" in conf:
            conf["countries"] = tuple(str(c) for c in conf["countries"])
        return cls(**conf)

    def filters(self) -> list[dict]:
        out = []
        if self.min_approval_rate is not None:
            out.append({"filter_id": "approval_rate", "selected_range": {"lower": int(self.min_approval_rate)}})
        if self.min_approvals is not None:
            out.append({"filter_id": "approval_numbers", "selected_range": {"lower": int(self.min_approvals)}})
        if self.countries:
            out.append({"filter_id": "current-country-of-residence", "selected_values": list(self.countries)})
        if self.blocklist_group:
            out.append({"filter_id": "participant_group_blocklist", "selected_values": [self.blocklist_group]})
        if self.allowlist_group:
            out.append({"filter_id": "participant_group_allowlist", "selected_values": [self.allowlist_group]})
        return out


client_factory = Prolific


def new_completion_code(dataset=None) -> str:
    """The dataset's configured code (PROLIFIC_COMPLETION_CODES[dataset] / PROLIFIC_COMPLETION_CODE, which the HIT
    page's hand-off uses), else a fresh random one."""
    if dataset is not None:
        code = prolific_completion_code(dataset)
        if code:
            return code
    return secrets.token_hex(4).upper()
