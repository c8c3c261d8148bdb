"""Request bodies at the HTTP edge (pydantic). Unknown fields are ignored, as CRD hook-23 asks
and as Epic's vendor extensions require; only what the service reads is validated."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class FhirAuthorization(BaseModel):
    model_config = ConfigDict(extra="ignore")

    access_token: str = Field(min_length=1)
    token_type: str = "Bearer"
    expires_in: int | None = None
    scope: str | None = None
    subject: str | None = None
    patient: str | None = None


class HookRequest(BaseModel):
    """A CDS Hooks 2.0 service call (§Calling a CDS Service)."""

    model_config = ConfigDict(extra="ignore")

    hook: str = Field(min_length=1)
    hookInstance: str = Field(min_length=1, max_length=200)
    fhirServer: str | None = None
    fhirAuthorization: FhirAuthorization | None = None
    context: dict[str, Any]
    prefetch: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _server_with_token(self) -> HookRequest:
        if self.fhirAuthorization is not None and not self.fhirServer:
            raise ValueError("fhirServer is required when fhirAuthorization is present")
        return self


RFC3339 = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
"""``outcomeTimestamp`` format (CDS Hooks §Feedback: RFC 3339); anything else is a 400."""


class SuggestionRef(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1)


class CodingIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    system: str | None = None
    code: str | None = None
    display: str | None = None


class OverrideReason(BaseModel):
    model_config = ConfigDict(extra="ignore")

    reason: CodingIn | None = None
    userComment: str | None = None


class FeedbackItem(BaseModel):
    model_config = ConfigDict(extra="ignore")

    card: str = Field(min_length=1, max_length=100)
    outcome: Literal["accepted", "overridden"]
    acceptedSuggestions: list[SuggestionRef] | None = None
    overrideReason: OverrideReason | None = None
    outcomeTimestamp: str = Field(pattern=RFC3339, max_length=40)


class FeedbackRequest(BaseModel):
    """``POST /cds-services/{id}/feedback`` (§Feedback)."""

    model_config = ConfigDict(extra="ignore")

    feedback: list[FeedbackItem] = Field(min_length=1, max_length=500)
