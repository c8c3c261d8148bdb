"""Typed errors of the CDS service and the one place that turns them into HTTP answers.

    CdsError
    ├── BadRequestError(ValueError)        400  body is not JSON / not a CDS Hooks request
    ├── AuthError(PermissionError)         401  JWT missing or invalid (the body says nothing more)
    ├── NotFoundError(LookupError)         404  no such evaluation
    │   └── UnknownServiceError            404  no such service id
    ├── PreconditionError(LookupError)     412  needed FHIR data neither prefetched nor fetchable
    ├── PayloadTooLargeError(ValueError)   413  body over ``max_body_bytes``
    ├── StoreUnavailableError(OSError)     503  feedback could not be written (database down); retry
    └── FhirFetchError(OSError)            -    one FHIR GET failed (the caller decides: 412 or skip)
        └── ServerNotAllowedError          -    fhirServer not allowed for this client (never contacted)

A CDS call answers 200/400/401/404/412/413, never 500: the catch-all handler logs the
exception type (never its text, which may quote a request) and answers 200 with no cards on a
service call, so a bug in advice never blocks a clinician.
"""
from __future__ import annotations

from typing import Any


class CdsError(Exception):
    """Base of every error the service raises on purpose."""

    status_code = 500
    code = "exception"  # OperationOutcome.issue.code


class BadRequestError(CdsError, ValueError):
    status_code = 400
    code = "invalid"


class AuthError(CdsError, PermissionError):
    """The JWT is missing or fails a check. ``reason`` goes to the log, never to the caller."""

    status_code = 401
    code = "login"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NotFoundError(CdsError, LookupError):
    status_code = 404
    code = "not-found"


class UnknownServiceError(NotFoundError):
    """No service with that id."""


class PreconditionError(CdsError, LookupError):
    status_code = 412
    code = "not-found"


class PayloadTooLargeError(CdsError, ValueError):
    status_code = 413
    code = "too-long"


class StoreUnavailableError(CdsError, OSError):
    """The database did not take a write the caller must know about (feedback)."""

    status_code = 503
    code = "transient"


class FhirFetchError(CdsError, OSError):
    """A GET against the client's FHIR server failed (network, timeout, status, not JSON)."""

    status_code = 412
    code = "not-found"

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ServerNotAllowedError(FhirFetchError):
    """The request names a ``fhirServer`` that the calling client is not registered for."""


def operation_outcome(message: str, *, code: str = "invalid", severity: str = "error") -> dict[str, Any]:
    """A minimal FHIR R4 OperationOutcome: the body of every non-200 answer but 401."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": message}],
    }
