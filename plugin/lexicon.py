"""Load and compile ``plugin/data/lexicon.yaml`` (the words the engine reads notes with).

The YAML is validated with pydantic (unknown keys rejected) and every regex compiled once; a bad
file raises ``RuleSetError`` naming the file and the path inside it, at load time rather than
on a patient's note.

    >>> lex = load_lexicon()
    >>> [m.group(0) for m in lex.activities["97530"].patterns[0].regex.finditer("stand pivot transfers")]
    ['transfers']
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from plugin.errors import RuleSetError

LEXICON_FILE = "lexicon.yaml"
_FLAGS = re.IGNORECASE | re.ASCII  # ASCII classes: ~20% faster, notes are matched on ASCII words


def bounded(pattern: str) -> str:
    """Wrap a pattern so it only matches whole words/tokens."""
    return rf"(?<![A-Za-z0-9])(?:{pattern})(?![A-Za-z0-9])"


class _Weighted(BaseModel):
    model_config = ConfigDict(extra="forbid")
    p: str
    w: float = 1.0
    aim: bool = False


class _Category(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str
    source: list[str] | str
    patterns: list[_Weighted]


class _Interventions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str
    codes: dict[str, list[str]]


class _Context(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str
    negation_before: list[str]
    negation_after: list[str]
    refusal: list[str]
    plan: list[str]
    purpose: list[str]


class _Criterion(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: list[str] | str
    patterns: list[str]
    negated_patterns: list[str] = Field(default_factory=list)
    not_a_response: list[str] = Field(default_factory=list)
    not_a_goal: list[str] = Field(default_factory=list)


class _LexiconFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str
    sources: dict[str, str]
    interventions: _Interventions
    activities: dict[str, _Category]
    context: _Context
    criteria: dict[str, _Criterion]

    @field_validator("version", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> str:
        return str(value)


@dataclass(frozen=True, slots=True)
class Pattern:
    regex: re.Pattern[str]
    weight: float
    source_text: str
    aim: bool = False
    fast: re.Pattern[str] | None = None  # the same pattern for ``lowered`` text


@dataclass(frozen=True, slots=True)
class ActivityCategory:
    code: str
    label: str
    patterns: tuple[Pattern, ...]


@dataclass(frozen=True, slots=True)
class Lexicon:
    version: str
    sources: dict[str, str]
    intervention_names: dict[str, re.Pattern[str]]  # code -> alternation of its names
    activities: dict[str, ActivityCategory]
    negation_before: re.Pattern[str]
    negation_after: re.Pattern[str]
    refusal: re.Pattern[str]
    plan: re.Pattern[str]
    purpose: re.Pattern[str]
    skilled: tuple[re.Pattern[str], ...]
    skilled_negated: tuple[re.Pattern[str], ...]
    response: tuple[re.Pattern[str], ...]
    not_a_response: tuple[re.Pattern[str], ...]
    goal: tuple[re.Pattern[str], ...]
    not_a_goal: tuple[re.Pattern[str], ...]
    skilled_fast: tuple[re.Pattern[str], ...] = ()
    skilled_negated_fast: tuple[re.Pattern[str], ...] = ()
    response_fast: tuple[re.Pattern[str], ...] = ()
    goal_fast: tuple[re.Pattern[str], ...] = ()


def lower_pattern(pattern: str) -> str:
    """The pattern for already-lowercased text: letters lowercased, escapes (\\S, \\d, \\b) kept."""
    out: list[str] = []
    escaped = False
    for ch in pattern:
        out.append(ch if escaped else ch.lower())
        escaped = not escaped and ch == "\\"
    return "".join(out)


def lowered(text: str) -> str:
    """``text`` in lower case with every offset unchanged (so quotes still come from the original).

    Matching lowercase patterns case-sensitively on lowercased text is ~20% faster than
    IGNORECASE, and the hot loops of ``plugin.reading`` run every lexicon pattern over each note.
    """
    low = text.lower()
    if len(low) == len(text):
        return low
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in text)  # e.g. "İ" lowers to 2 chars


def _fast(pattern: str, where: str) -> re.Pattern[str]:
    try:
        return re.compile(bounded(lower_pattern(pattern)), re.ASCII)
    except re.error as exc:
        raise RuleSetError(f"invalid regex ({exc})", file=LEXICON_FILE, path=where) from exc


def _compile(pattern: str, where: str, *, wrap: bool = True) -> re.Pattern[str]:
    try:
        return re.compile(bounded(pattern) if wrap else pattern, _FLAGS)
    except re.error as exc:
        raise RuleSetError(f"invalid regex ({exc})", file=LEXICON_FILE, path=where) from exc


def _alternation(patterns: list[str], where: str) -> re.Pattern[str]:
    for i, p in enumerate(patterns):
        _compile(p, f"{where}[{i}]")
    return _compile("|".join(f"(?:{p})" for p in patterns), where)


def parse_lexicon(raw: Any) -> Lexicon:
    """Validate and compile a lexicon document (the YAML already parsed)."""
    try:
        doc = _LexiconFile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(p) for p in first.get("loc", ()))
        raise RuleSetError(first.get("msg", "invalid"), file=LEXICON_FILE, path=path) from exc
    activities = {
        code: ActivityCategory(
            code=code,
            label=cat.label,
            patterns=tuple(
                Pattern(_compile(item.p, f"activities.{code}.patterns[{i}]"), item.w, item.p, item.aim,
                        _fast(item.p, f"activities.{code}.patterns[{i}]"))
                for i, item in enumerate(cat.patterns)
            ),
        )
        for code, cat in doc.activities.items()
    }
    crit = doc.criteria
    for needed in ("skilled-intervention", "patient-response", "functional-goal"):
        if needed not in crit:
            raise RuleSetError("criterion missing", file=LEXICON_FILE, path=f"criteria.{needed}")

    def many(items: list[str], where: str) -> tuple[re.Pattern[str], ...]:
        return tuple(_compile(p, f"{where}[{i}]") for i, p in enumerate(items))

    def fast(items: list[str], where: str) -> tuple[re.Pattern[str], ...]:
        return tuple(_fast(p, f"{where}[{i}]") for i, p in enumerate(items))

    ctx = doc.context
    return Lexicon(
        version=doc.version,
        sources=doc.sources,
        intervention_names={
            code: _alternation(names, f"interventions.codes.{code}") for code, names in doc.interventions.codes.items()
        },
        activities=activities,
        negation_before=_alternation(ctx.negation_before, "context.negation_before"),
        negation_after=_alternation(ctx.negation_after, "context.negation_after"),
        refusal=_alternation(ctx.refusal, "context.refusal"),
        plan=_alternation(ctx.plan, "context.plan"),
        purpose=_alternation(ctx.purpose, "context.purpose"),
        skilled=many(crit["skilled-intervention"].patterns, "criteria.skilled-intervention.patterns"),
        skilled_negated=many(crit["skilled-intervention"].negated_patterns, "criteria.skilled-intervention.negated_patterns"),
        response=many(crit["patient-response"].patterns, "criteria.patient-response.patterns"),
        not_a_response=many(crit["patient-response"].not_a_response, "criteria.patient-response.not_a_response"),
        goal=many(crit["functional-goal"].patterns, "criteria.functional-goal.patterns"),
        not_a_goal=many(crit["functional-goal"].not_a_goal, "criteria.functional-goal.not_a_goal"),
        skilled_fast=fast(crit["skilled-intervention"].patterns, "criteria.skilled-intervention.patterns"),
        skilled_negated_fast=fast(crit["skilled-intervention"].negated_patterns, "criteria.skilled-intervention.negated_patterns"),
        response_fast=fast(crit["patient-response"].patterns, "criteria.patient-response.patterns"),
        goal_fast=fast(crit["functional-goal"].patterns, "criteria.functional-goal.patterns"),
    )


@lru_cache(maxsize=1)
def load_lexicon() -> Lexicon:
    """The packaged lexicon, parsed once per process."""
    text = resources.files("plugin").joinpath("data").joinpath(LEXICON_FILE).read_text(encoding="utf-8")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RuleSetError(f"not valid YAML ({exc})", file=LEXICON_FILE) from exc
    return parse_lexicon(raw)
