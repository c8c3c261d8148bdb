"""Typed errors of the FHIR REST client (the caller decides: HTTP 412, skip, or retry).

    FhirRestError(OSError)          one request failed: network, status, not JSON, ...
    ├── FhirTimeoutError            the call's time, or the whole request's budget, ran out
    ├── FhirTooLargeError           the answer (raw or inflated) is over the size limit
    └── FhirUrlError(ValueError)    the URL is not one a token may be sent to (nothing was sent)

Messages never quote a URL's path or query, a token, or any part of a response body.
"""
from __future__ import annotations


class FhirRestError(OSError):
    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else type(self).__name__


class FhirTimeoutError(FhirRestError):
    """Per-call timeout or the request's whole budget ran out."""


class FhirTooLargeError(FhirRestError):
    """The response is over ``Limits.max_bytes`` on the wire or once inflated."""


class FhirUrlError(FhirRestError, ValueError):
    """Refused before sending: too long, not http(s), user info, dot segments (also encoded), ..."""
