"""The five documentation criteria of a 97530 line, judged from a ``Reading``.

Wording (messages, fix hints, example text) lives in ``plugin/data/criteria.yaml``; this
module only decides met or missing and attaches the quotes that decided it.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from plugin.errors import RuleSetError
from plugin.model import CRITERIA, Evidence, Finding, Status
from plugin.reading import TA, Reading

CRITERIA_FILE = "criteria.yaml"
MAX_QUOTES = 4


class _Wording(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str
    source: str
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


def wording() -> dict[str, _Wording]:
    return _criteria_file().criteria


def criteria_version() -> str:
    """The ``version`` of criteria.yaml, reported with every evaluation."""
    return _criteria_file().version


@lru_cache(maxsize=1)
def _criteria_file() -> _CriteriaFile:
    text = resources.files("plugin").joinpath("data").joinpath(CRITERIA_FILE).read_text(encoding="utf-8")
    try:
        doc = _CriteriaFile.model_validate(yaml.safe_load(text))
    except (ValidationError, yaml.YAMLError) as exc:
        raise RuleSetError(str(exc).splitlines()[0], file=CRITERIA_FILE) from exc
    missing = set(CRITERIA) - set(doc.criteria)
    if missing:
        raise RuleSetError(f"criteria without wording: {sorted(missing)}", file=CRITERIA_FILE)
    return doc


def judge(reading: Reading, time: TimeEvidence) -> tuple[Finding, ...]:
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
    words = wording()
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
