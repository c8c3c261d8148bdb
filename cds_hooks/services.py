"""The service catalogue (``services.yaml``): discovery document and per-service evaluation facts."""
from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field


class EvaluationSpec(BaseModel):
    """Internal: how a service turns its hook into an evaluation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lines_from: Literal["ServiceRequest", "Claim", "Procedure"]
    required: tuple[str, ...] = ()


class ServiceDef(BaseModel):
    """One CDS service as advertised in discovery, plus its ``evaluation`` facts."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: str = Field(pattern=r"^[A-Za-z0-9._~-]+$")
    hook: str
    title: str
    description: str
    usage_requirements: str | None = Field(default=None, alias="usageRequirements")
    prefetch: dict[str, str] = Field(default_factory=dict)
    evaluation: EvaluationSpec

    def discovery(self) -> dict[str, Any]:
        out: dict[str, Any] = {"hook": self.hook, "title": self.title, "description": self.description, "id": self.id}
        if self.prefetch:
            out["prefetch"] = dict(self.prefetch)
        if self.usage_requirements:
            out["usageRequirements"] = self.usage_requirements
        return out


class Catalogue(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    services: tuple[ServiceDef, ...]

    def get(self, service_id: str) -> ServiceDef | None:
        return next((s for s in self.services if s.id == service_id), None)

    def discovery(self) -> dict[str, Any]:
        return {"services": [s.discovery() for s in self.services]}


@lru_cache(maxsize=1)
def load_catalogue() -> Catalogue:
    text = resources.files("cds_hooks").joinpath("services.yaml").read_text("utf-8")
    return Catalogue.model_validate(yaml.safe_load(text))
