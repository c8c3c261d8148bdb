"""The registry of EHRs (CDS clients) allowed to call this service, read from a YAML file.

    clients:
      - iss: https://ehr.example.org            # the JWT's iss
        jku: [https://ehr.example.org/jwks]     # jku URLs allowed for this iss (optional)
        jwks: {keys: [...]}                     # keys agreed out of band (optional)
        fhir_servers: [https://ehr.example.org/fhir]
        name: example-ehr                       # optional; shown in logs and the feedback report
        suggestion_style: update                # update | delete-create (Epic applies no update)
        selection_behavior: at-most-one         # at-most-one | any (Epic accepts only any)
        info_cards: false                       # optional override of the service setting
        smart_links: true                       # optional: omit SMART links for clients that strip them
        cors_origins: [https://ehr.example.org] # optional browser origins of this client

Unknown keys are rejected at startup so a typo never silently weakens trust.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cds_hooks.errors import CdsError


class ClientsFileError(CdsError, ValueError):
    """The clients file is missing, not YAML, or has invalid entries (names the entry)."""


class Client(BaseModel):
    """One registered CDS client (an EHR tenant)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    iss: str
    jku: tuple[str, ...] = ()
    jwks: dict[str, Any] | None = None
    fhir_servers: tuple[str, ...] = ()
    name: str = ""
    tenant: str | None = None
    suggestion_style: Literal["update", "delete-create"] = "update"
    selection_behavior: Literal["at-most-one", "any"] = "at-most-one"
    info_cards: bool | None = None
    smart_links: bool = True
    cors_origins: tuple[str, ...] = ()
    algorithms: tuple[str, ...] = ()
    """Optional narrower list of JWT algorithms for this client (must be within the service's list)."""

    @field_validator("jku", "fhir_servers", "cors_origins", "algorithms", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("jwks")
    @classmethod
    def _jwks_has_keys(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and not isinstance(value.get("keys"), list):
            raise ValueError("jwks must be a JWK Set: {keys: [...]}")
        return value

    @property
    def label(self) -> str:
        return self.name or self.iss

    def allows_fhir_server(self, url: str) -> bool:
        """True if ``url`` is one of this client's FHIR bases (same scheme, host, port, path prefix)."""
        return fhir_server_allowed(url, self.fhir_servers)


def fhir_server_allowed(url: str, allowed: Iterable[str]) -> bool:
    """Exact base match after normalising a trailing slash; a longer path under a base also matches."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        return False
    if any(seg in (".", "..") for seg in parts.path.split("/")) or "%2e" in parts.path.lower():
        return False  # dot segments would be resolved by the HTTP client to somewhere else
    target = url.rstrip("/")
    for base in allowed:
        base = base.rstrip("/")
        if target == base or target.startswith(base + "/"):
            return True
    return False


class ClientRegistry(BaseModel):
    """All registered clients, looked up by ``iss``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    clients: tuple[Client, ...] = Field(default=())

    def by_iss(self, iss: str) -> list[Client]:
        return [c for c in self.clients if c.iss == iss]

    def all_fhir_servers(self) -> tuple[str, ...]:
        return tuple(s for c in self.clients for s in c.fhir_servers)

    def all_cors_origins(self) -> tuple[str, ...]:
        return tuple(o for c in self.clients for o in c.cors_origins)

    @classmethod
    def load(cls, path: Path | None) -> ClientRegistry:
        """Read ``path``; ``None`` means no client is registered (only dev mode can call)."""
        if path is None:
            return cls()
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ClientsFileError(f"cannot read clients file {path}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise ClientsFileError(f"clients file {path} is not valid YAML") from exc
        return cls.from_data(data, source=str(path))

    @classmethod
    def from_data(cls, data: Any, *, source: str = "clients") -> ClientRegistry:
        if not isinstance(data, dict) or not isinstance(data.get("clients", []), list):
            raise ClientsFileError(f"{source}: expected a mapping with a 'clients' list")
        try:
            return cls.model_validate({"clients": data.get("clients") or []})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ClientsFileError(f"{source}: {where}: {first['msg']}") from exc
