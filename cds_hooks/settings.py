"""Settings of the CDS service, read from ``CDS97530_*`` variables only when asked (no import-time reads).

    CdsSettings()                                   # from the environment
    CdsSettings(public_url="https://cds.example.org", clients_file="clients.yaml")
    CdsSettings(dev_mode_insecure=True)             # local trials only: JWT checks off, logged loudly
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

FORBIDDEN_ALGORITHMS = frozenset({"none", "HS256", "HS384", "HS512"})
DEFAULT_POLICY_URL = "https://www.cms.gov/Regulations-and-Guidance/Guidance/Manuals/Downloads/bp102c15.pdf"


class CdsSettings(BaseSettings):
    """Everything an operator can change. Defaults suit ``cds97530 serve`` on 127.0.0.1."""

    model_config = SettingsConfigDict(env_prefix="CDS97530_", extra="ignore")

    public_url: str = "http://127.0.0.1:8530"
    """Base URL the EHR calls; a JWT's ``aud`` must equal this plus the path invoked."""
    database_url: str = "sqlite:///.cds97530/cds97530.sqlite3"
    clients_file: Path | None = None
    create_tables: bool = True
    """Create missing tables at startup (SQLite default); production PostgreSQL uses ``cds97530 db upgrade``."""

    deadline_seconds: float = Field(default=1.5, gt=0, le=30)
    """Whole-request budget; past it the answer is 200 with no cards."""
    fhir_timeout_seconds: float = Field(default=1.0, gt=0)
    fhir_max_pages: int = Field(default=5, ge=1)
    max_body_bytes: int = Field(default=8_000_000, ge=1024)
    max_parallel_evaluations: int = Field(default=2, ge=1, le=64)
    """Only with ``evaluation_processes=0`` (evaluations in threads of the service process)."""
    evaluation_processes: int | None = Field(default=None, ge=0, le=64)
    """Worker processes that evaluate notes (None: one per core). An evaluation still running at
    the deadline is abandoned and its worker killed and replaced. 0 evaluates in a thread of the
    service process instead: no hard cut (embedding only). With ``serve --workers N`` every uvicorn
    worker has its own pool: set this to about cores / N."""
    evaluation_memory_mb: int = Field(default=1024, ge=0)
    """Address space each evaluation worker may add after loading (0: no limit)."""
    evaluation_max_jobs: int = Field(default=5000, ge=1)
    """A worker is replaced after this many evaluations (bounds slow leaks)."""
    evaluation_cache_size: int = Field(default=256, ge=0, le=100_000)
    """Hook outcomes kept for a hook fired again on identical inputs (an EHR re-firing order-sign
    or patient-view): answered without re-evaluating, with fresh card ids. Card text (quotes from
    the note) stays in the service's memory for at most this many entries; 0 turns it off."""
    deadline_answer: Literal["info-card", "no-card"] = "info-card"
    """What a call cut by the deadline answers: an info card saying the note could not be checked
    in time, or no card at all."""

    max_header_bytes: int = Field(default=16_384, ge=1024)
    """Request line plus headers, per request (a JWT is 1-2 KB); larger is refused before anything is read."""
    max_headers: int = Field(default=64, ge=8)
    header_timeout_seconds: float = Field(default=5.0, gt=0)
    """A client that has not sent its whole request head by then is disconnected."""
    body_timeout_seconds: float = Field(default=10.0, gt=0)
    """A body not fully received by then is answered 408 (slow-body attacks)."""
    fhir_call_seconds: float | None = Field(default=None, gt=0)
    """Budget of one FHIR read (default: ``fhir_timeout_seconds``)."""
    fhir_budget_seconds: float | None = Field(default=None, gt=0)
    """Budget of all FHIR reads of one hook call (default: ``deadline_seconds`` minus a margin)."""
    fhir_max_response_bytes: int = Field(default=12_000_000, ge=1024)
    """A FHIR answer larger than this (on the wire or after gzip inflation) is cut off and treated as
    unavailable (an 8 MB attachment is ~10.7 MB as a JSON Binary)."""
    fhir_server_max_length: int = Field(default=2048, ge=64)

    jwt_algorithms: list[str] = ["RS384", "ES384"]
    jwt_leeway_seconds: int = Field(default=30, ge=0, le=600)
    jwt_max_lifetime_seconds: int = Field(default=3600, ge=1)
    jwks_timeout_seconds: float = Field(default=2.0, gt=0)
    jwks_cache_seconds: float = Field(default=300.0, ge=0)
    jwks_stale_max_seconds: float = Field(default=3600.0, ge=0, le=7 * 24 * 3600)
    """How long past ``jwks_cache_seconds`` the last good keys of a JWKS URL that cannot be
    fetched are still used (logged at ERROR on every failed refresh)."""
    discovery_requires_jwt: bool = False

    cors_origins: list[str] = []
    dev_mode_insecure: bool = False
    """Skip JWT checks (local trials only). Every request logs a warning while it is on."""
    dev_fhir_servers: list[str] = []
    """FHIR servers an unauthenticated dev-mode call may name (besides every registered client's)."""

    smart_launch_url: str | None = None
    policy_url: str = DEFAULT_POLICY_URL
    source_label: str = "CPT 97530 documentation check"
    info_cards: bool = False
    patient_view_window_hours: float = Field(default=24.0, gt=0, le=24 * 14)
    """patient-view without encounterId checks the patient's latest 97530 visit this many hours back."""
    """Also send an ``info`` card for a 97530 line that is fully supported."""
    rules_dir: Path | None = None
    """A ruleset directory (a copy of ``plugin/data``, see docs/rules.md) instead of the packaged rules."""
    evaluations_token: str | None = None
    """If set, ``GET /evaluations/{id}`` requires ``Authorization: Bearer <token>``."""

    @field_validator("jwt_algorithms")
    @classmethod
    def _no_weak_algorithms(cls, value: list[str]) -> list[str]:
        bad = [a for a in value if a in FORBIDDEN_ALGORITHMS or a.lower() == "none" or a.upper().startswith("HS")]
        if bad:
            raise ValueError(f"JWT algorithms {bad} are not allowed (CDS Hooks forbids none and HMAC)")
        if not value:
            raise ValueError("at least one JWT algorithm is required")
        return value

    @field_validator("public_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    def endpoint_url(self, path: str) -> str:
        """The exact URL a JWT's ``aud`` must name for ``path`` (e.g. ``/cds-services/x``)."""
        return self.public_url + path
