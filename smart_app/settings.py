"""Settings of the SMART launch page: who we are to the authorization server, whom we trust.

Built by the caller (``SmartSettings(...)`` in tests, ``SmartSettings()`` from the environment in
``serve``); nothing here is read at import time.
"""
from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class SmartSettings(BaseSettings):
    """``SMART_*`` environment variables, e.g. ``SMART_ALLOWED_ISSUERS='["https://ehr.example/fhir"]'``."""

    model_config = SettingsConfigDict(env_prefix="SMART_", extra="ignore")

    client_id: str = "cds97530-smart"
    client_secret: SecretStr | None = None  # confidential client (client_secret_basic) when set
    base_url: str = "http://127.0.0.1:8530/smart"  # public URL of this app; the redirect URI hangs off it
    allowed_issuers: list[str] = Field(default_factory=list)  # FHIR bases we may contact; empty = none
    session_ttl_seconds: int = 3600
    fhir_timeout_seconds: float = 15.0
    max_search_pages: int = 5  # paging bound per FHIR search (never follows links to other hosts)

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("allowed_issuers")
    @classmethod
    def _normalise_issuers(cls, value: list[str]) -> list[str]:
        return [v.rstrip("/") for v in value]

    @property
    def redirect_uri(self) -> str:
        return f"{self.base_url}/callback"

    @property
    def secure_cookies(self) -> bool:
        return self.base_url.startswith("https://")
