"""Errors raised by services; views map them to HTTP codes, commands to a message and exit code 1."""


class AvcrowdError(Exception):
    """Base class: the message is meant for a person and names what is wrong and what is allowed."""

    status_code = 400

    def __init__(self, message: str, *, field: str | None = None, details=None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details

    def as_text(self) -> str:
        """The message followed by one indented line per detail (for management commands)."""
        lines = [self.message]
        if isinstance(self.details, (list, tuple)):
            lines += [f"  {d}" for d in self.details]
        return "\n".join(lines)

    def as_dict(self) -> dict:
        out = {"error": self.message}
        if self.field:
            out["field"] = self.field
        if self.details is not None:
            out["details"] = self.details
        return out


class ValidationError(AvcrowdError):
    status_code = 400


class Forbidden(AvcrowdError):
    status_code = 403


class NotFound(AvcrowdError):
    status_code = 404


class ImportFailed(AvcrowdError):
    """An import was refused; `details` holds one message per problem (file, line, field, allowed values)."""

    status_code = 400


class _RetryLater(AvcrowdError):
    """A refusal the client should retry after `retry_after` seconds (the Retry-After header)."""

    default_retry_after = 60

    def __init__(self, message: str, *, retry_after: int | None = None, field: str | None = None, details=None):
        super().__init__(message, field=field, details=details)
        self.retry_after = max(1, int(self.default_retry_after if retry_after is None else retry_after))


class TooManyRequests(_RetryLater):
    """A rate limit (catalog.throttles) was reached; `retry_after` is the wait in seconds (Retry-After header)."""

    status_code = 429


class TryAgain(_RetryLater):
    """The request met a change it could not wait out (503 with Retry-After: clients retry it as they retry a
    restart); nothing was written."""

    status_code = 503
    default_retry_after = 1
