"""The five documentation criteria of a 97530 line, judged from a ``Reading``.

Wording (messages, fix hints, example text) lives in ``plugin/data/criteria.yaml``; this
module only decides met or missing and attaches the quotes that decided it.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from plugin.errors import RuleSetError
from plugin.model import CRITERIA, Evidence, Finding, Status
from plugin.reading import TA, Reading

if TYPE_CHECKING:
    from plugin.ruleset import Ruleset

CRITERIA_FILE = "criteria.yaml"
MAX_QUOTES = 4


class _Wording(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str
    source: str
    cites: list[str] = Field(default_factory=list)  # keys of lexicon.yaml `sources`
    met: str
    missing: str
    fix_hint: str
    example: str


class _CriteriaFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str
    criteria: dict[str, _Wording]


@dataclass(frozen=True, slots=True)
class TimeEvidence:
    """What the minutes resolution found for the line (from the engine)."""

    documented: bool
    evidence: tuple[Evidence, ...]
    reason: str = ""


@dataclass(frozen=True, slots=True)
class CriteriaText:
    """The validated ``criteria.yaml`` of one ruleset: its version and each criterion's wording."""

    version: str
    wording: Mapping[str, _Wording]


def read_criteria(directory: Path, sources: Mapping[str, str]) -> CriteriaText:
    """Parse ``criteria.yaml`` of a ruleset directory; every ``cites`` key must be a defined source."""
    from plugin.ruleset import read_yaml

    raw = read_yaml(directory / CRITERIA_FILE)
    try:
        doc = _CriteriaFile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(p) for p in first.get("loc", ()))
        raise RuleSetError(first.get("msg", "invalid"), file=CRITERIA_FILE, path=path) from exc
    missing = set(CRITERIA) - set(doc.criteria)
    if missing:
        raise RuleSetError(f"criteria without wording: {sorted(missing)}", file=CRITERIA_FILE)
    for name, w in doc.criteria.items():
        for key in w.cites:
            if key not in sources:
                raise RuleSetError(f"[{name}] source {key!r} is not defined under lexicon.yaml `sources`",
                                   file=CRITERIA_FILE, path=f"criteria.{name}.cites")
    return CriteriaText(version=str(doc.version), wording=MappingProxyType(dict(doc.criteria)))


def _text(ruleset: Ruleset | None) -> CriteriaText:
    if ruleset is None:
        from plugin.ruleset import load_ruleset

        ruleset = load_ruleset()
    return ruleset.criteria


def wording(ruleset: Ruleset | None = None) -> Mapping[str, _Wording]:
    return _text(ruleset).wording


def criteria_version(ruleset: Ruleset | None = None) -> str:
    """The ``version`` of criteria.yaml, reported with every evaluation."""
    return _text(ruleset).version


def judge(reading: Reading, time: TimeEvidence, ruleset: Ruleset | None = None) -> tuple[Finding, ...]:
    """One Finding per criterion, in CRITERIA order."""
    ta_evidence = tuple(ev for c in reading.activity_clauses if c.code == TA for ev in c.evidence)
    decided = {
        "dynamic-activity": ta_evidence,
        "functional-goal": reading.goal,
        "skilled-intervention": reading.skilled,
        "patient-response": reading.response,
        "time-documented": time.evidence if time.documented else (),
    }
    met = {
        "dynamic-activity": bool(ta_evidence),
        "functional-goal": bool(reading.goal),
        "skilled-intervention": bool(reading.skilled),
        "patient-response": bool(reading.response),
        "time-documented": time.documented,
    }
    words = wording(ruleset)
    findings = []
    for criterion in CRITERIA:
        w = words[criterion]
        ok = met[criterion]
        message = w.met if ok else w.missing
        if criterion == "time-documented" and not ok and time.reason:
            message = f"{w.missing} {time.reason}"
        findings.append(Finding(
            criterion=criterion,
            status=Status.MET if ok else Status.MISSING,
            message=message,
            evidence=decided[criterion][:MAX_QUOTES],
            fix_hint="" if ok else w.fix_hint,
            example="" if ok else w.example,
        ))
    return tuple(findings)
