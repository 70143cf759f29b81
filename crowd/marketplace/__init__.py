"""Crowd marketplaces: MTurk (boto3), Prolific (REST), in-house. Services call these; tests stub them."""


class MarketplaceError(Exception):
    """A marketplace call failed for good (after retries) or cannot be made; the message is for a person."""

    def __init__(self, message: str, *, code: str = ""):
        super().__init__(message)
        self.message = message
        self.code = code


class MarketplaceConfigError(MarketplaceError):
    """Missing credentials / region / token: nothing was sent."""
