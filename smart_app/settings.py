"""Settings of the SMART launch page: who we are to the EHR's authorization server, whom we trust.

Built by the caller (``SmartSettings(...)`` in tests, ``SmartSettings()`` from the environment in
``serve``, which adds the FHIR servers and browser origins of the registered EHRs); nothing here is
read at import time. See docs/deploying.md for every variable.
"""
from __future__ import annotations

import hashlib
import json
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class SmartSettings(BaseSettings):
    """``SMART_*`` environment variables, e.g. ``SMART_ALLOWED_ISSUERS='["https://ehr.example/fhir"]'``."""

    model_config = SettingsConfigDict(env_prefix="SMART_", extra="ignore")

    client_id: str = "cds97530-smart"
    client_secret: SecretStr | None = None
    """Confidential client with a shared secret (``client_secret_basic``)."""
    private_key_file: Path | None = None
    """Confidential client with a key pair (``private_key_jwt``): PEM private key (RSA or EC P-384).
    The public half is served at ``{base_url}/.well-known/jwks.json`` for the EHR's registration."""
    private_key_alg: Literal["RS384", "ES384"] = "RS384"
    base_url: str = "http://127.0.0.1:8530/smart"  # public URL of this app; the redirect URI hangs off it
    allowed_issuers: list[str] = Field(default_factory=list)  # FHIR bases we may contact; empty = none
    frame_ancestors: list[str] = Field(default_factory=list)
    """Browser origins of the EHRs allowed to show the page in their iframe (CSP ``frame-ancestors``);
    empty = the page may not be framed at all."""
    database_url: str | None = None
    """Where sessions live (shared by replicas); ``serve`` uses the service's database when unset.
    Unset and no store given = in-memory (one process only)."""
    create_tables: bool = True
    session_ttl_seconds: int = Field(default=3600, ge=60, le=24 * 3600)
    fhir_timeout_seconds: float = 15.0
    max_search_pages: int = 5  # paging bound per FHIR search (never follows links to other hosts)
    rules_dir: Path | None = None
    """The ruleset directory the page evaluates with (a copy of ``plugin/data``, docs/rules.md); ``serve``
    sets it to the service's (``--rules`` / ``CDS97530_RULES_DIR``) so card and page agree. Unset = packaged."""

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("allowed_issuers", "frame_ancestors")
    @classmethod
    def _normalise_urls(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(v.rstrip("/") for v in value))

    @field_validator("frame_ancestors")
    @classmethod
    def _origins_only(cls, value: list[str]) -> list[str]:
        for origin in value:
            if not origin.startswith(("https://", "http://")) or any(c in origin for c in " ;,'\""):
                raise ValueError(f"frame ancestor {origin!r} is not an http(s) origin")
        return value

    @property
    def redirect_uri(self) -> str:
        return f"{self.base_url}/callback"

    @property
    def secure_cookies(self) -> bool:
        return self.base_url.startswith("https://")

    @property
    def client_auth(self) -> str:
        """How the app authenticates at the token endpoint (what to register at the EHR)."""
        if self.private_key_file is not None:
            return "private_key_jwt"
        return "client_secret_basic" if self.client_secret is not None else "none"

    @cached_property
    def _private_key(self) -> Any:
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        if self.private_key_file is None:
            raise ValueError("no SMART_PRIVATE_KEY_FILE")
        return load_pem_private_key(Path(self.private_key_file).read_bytes(), password=None)

    def private_key(self) -> Any:
        return self._private_key

    def public_jwks(self) -> dict[str, Any]:
        """The public key as a JWK Set (``kid`` = RFC 7638 thumbprint prefix), or no keys."""
        if self.private_key_file is None:
            return {"keys": []}
        from jwt.algorithms import ECAlgorithm, RSAAlgorithm

        algorithm = RSAAlgorithm if self.private_key_alg == "RS384" else ECAlgorithm
        jwk = json.loads(algorithm.to_jwk(self._private_key.public_key()))
        jwk.update({"kid": self.private_key_kid(), "alg": self.private_key_alg, "use": "sig"})
        return {"keys": [jwk]}

    def private_key_kid(self) -> str:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        der = self._private_key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        return hashlib.sha256(der).hexdigest()[:16]
