"""Domain errors. The API handler maps each to one HTTP status, in one place."""

from __future__ import annotations


class DomainError(Exception):
    """Base of the errors a use case raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(DomainError):
    """The thing does not exist, or belongs to somebody else (the caller cannot tell which)."""


class InvalidInput(DomainError):
    """Well-formed input that breaks a rule the schema cannot check (a past start, a bad cursor)."""

    def __init__(self, message: str, *, field: str | None = None, location: str = "body") -> None:
        super().__init__(message)
        self.field = field
        # Where the field was sent: "body", "query" or "header".
        self.location = location


class Conflict(DomainError):
    """The request collides with another one still in progress; retrying later may succeed."""
