"""Prolific backend through its REST API (https://api.prolific.com/api/v1/ by default; PROLIFIC_API_URL overrides,
PROLIFIC_API_TOKEN authenticates). One study per batch; the study URL carries Prolific's URL parameters."""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request

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

    def call(self, operation: str, method: str, path: str, body: dict | None = None, *, hit=None) -> dict:
        return call_logged(
            lambda **kw: self._request(**kw),
            {"method": method, "path": path, "body": body},
            backend="prolific",
            operation=operation,
            sandbox=False,
            hit=hit,
            policy=self.policy,
        )

    # --- operations ---
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
        hit=None,
    ) -> dict:
        sep = "&" if "?" in external_url else "?"
        body = {
            "name": name,
            "internal_name": name,
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
        return self.call("CreateStudy", "POST", "studies/", body, hit=hit)

    def publish_study(self, study_id: str, *, hit=None) -> dict:
        return self.call("PublishStudy", "POST", f"studies/{study_id}/transition/", {"action": "PUBLISH"}, hit=hit)

    def set_places(self, study_id: str, places: int, *, hit=None) -> dict:
        return self.call("UpdateStudy", "PATCH", f"studies/{study_id}/", {"total_available_places": places}, hit=hit)

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

    def reject(self, submission_id: str, message: str, *, hit=None) -> dict:
        message = message or "Your answers on the check clips did not meet the required quality."
        if len(message) < 100:  # Prolific requires a rejection message of at least 100 characters
            message = (
                message + " " + "The check clips in this study have known answers; yours differed "
                "from them too much to accept the submission."
            )[:1000]
        return self.call(
            "RejectSubmission",
            "POST",
            f"submissions/{submission_id}/transition/",
            {"action": "REJECT", "message": message, "rejection_category": "LOW_EFFORT"},
            hit=hit,
        )


client_factory = Prolific


def new_completion_code(dataset=None) -> str:
    """The dataset's configured code (PROLIFIC_COMPLETION_CODES[dataset] / PROLIFIC_COMPLETION_CODE, which the HIT
    page's hand-off uses), else a fresh random one."""
    if dataset is not None:
        code = prolific_completion_code(dataset)
        if code:
            return code
    return secrets.token_hex(4).upper()
