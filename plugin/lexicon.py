"""Load and compile ``lexicon.yaml`` (the words the engine reads notes with).

The YAML is validated with pydantic (unknown keys rejected) and every regex compiled once; a bad
file raises ``RuleSetError`` naming the file, the path inside it and the entry id, at load time
rather than on a patient's note. Every entry has a stable ``id`` and at least one ``source``
defined under ``sources``; its paired examples (``lexicon.examples.yaml``) are joined onto it
here so ``cds97530 rules test`` and the test suite can run them.

Why a ``Rule`` beside the engine's tuples: the engine's hot loops keep reading the compiled
tuples (``skilled_fast`` …) it always read, while everything that explains or tests the lexicon
(rule ids on evidence, ``rules explain``, ablation) walks ``Lexicon.rules``. Both are built from
the same entry, so they cannot drift.

    >>> lex = load_lexicon()
    >>> [m.group(0) for m in lex.activities["97530"].patterns[0].regex.finditer("stand pivot transfers")]
    ['transfers']
    >>> lex.activities["97530"].patterns[0].id
    'ta.transfer'
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from plugin.errors import RuleSetError

if TYPE_CHECKING:  # plugin.prefilter is imported when a lexicon is built (it loads google-re2)
    from plugin.prefilter import Prefilter

LEXICON_FILE = "lexicon.yaml"
EXAMPLES_FILE = "lexicon.examples.yaml"
_FLAGS = re.IGNORECASE | re.ASCII  # ASCII classes: ~20% faster, notes are matched on ASCII words
_ID = r"^[a-z0-9]+(?:[.-][a-z0-9]+)*$"

Direction = Literal["forward", "backward", "both"]


def bounded(pattern: str) -> str:
    """Wrap a pattern so it only matches whole words/tokens."""
    return rf"(?<![A-Za-z0-9])(?:{pattern})(?![A-Za-z0-9])"


# ----------------------------------------------------------------------------- file schema


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Entry(_Strict):
    """One pattern of an activity category or a criterion list."""

    id: str = Field(pattern=_ID)
    p: str
    w: float = 1.0
    aim: bool = False
    source: list[str] | str | None = None
    not_: list[str] = Field(default_factory=list, alias="not")


class _Category(_Strict):
    label: str
    source: list[str] | str
    patterns: list[_Entry]


class _Interventions(_Strict):
    source: str
    codes: dict[str, list[str]]


class _Trigger(_Strict):
    """A ConText trigger: a ``literal`` phrase or a regex ``p``, with its scope."""

    id: str = Field(pattern=_ID)
    literal: str | None = None
    p: str | None = None
    direction: Direction | None = None
    window: int | Literal["clause", "sentence"] | None = None
    bounded: bool = True
    source: list[str] | str | None = None

    @model_validator(mode="after")
    def _one_form(self) -> _Trigger:
        if (self.literal is None) == (self.p is None):
            raise ValueError("give exactly one of `literal` or `p`")
        return self


class _ContextCategory(_Strict):
    why: str
    direction: Direction | None = None
    window: int | Literal["clause", "sentence"] | None = None
    triggers: list[_Trigger]


class _Context(_Strict):
    source: str
    negation: _ContextCategory
    terminators: _ContextCategory
    refusal: _ContextCategory
    plan: _ContextCategory
    purpose: _ContextCategory
    topic: _ContextCategory | None = None  # what education covered ("went over hip hinge"): a subject, not a task done
    sequel: _ContextCategory | None = None  # a new action in the same sentence ("then", "instead"): ends a refusal or topic


class _Criterion(_Strict):
    source: list[str] | str
    patterns: list[_Entry]
    negated_patterns: list[_Entry] = Field(default_factory=list)
    not_a_response: list[_Entry] = Field(default_factory=list)
    not_a_goal: list[_Entry] = Field(default_factory=list)


class _LexiconFile(_Strict):
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


class _Examples(_Strict):
    fires: list[str] = Field(default_factory=list)
    quiet: list[str] = Field(default_factory=list)


# ----------------------------------------------------------------------------- compiled values


@dataclass(frozen=True, slots=True)
class Pattern:
    regex: re.Pattern[str]
    weight: float
    source_text: str
    aim: bool = False
    fast: re.Pattern[str] | None = None  # the same pattern for ``lowered`` text
    id: str = ""


@dataclass(frozen=True, slots=True)
class ActivityCategory:
    code: str
    label: str
    patterns: tuple[Pattern, ...]


@dataclass(frozen=True, slots=True)
class Rule:
    """One lexicon entry as a reviewer sees it: id, where it sits, what it matches, why, examples.

    ``group`` is the list it belongs to (``activities.97530``, ``criteria.skilled-intervention.patterns``,
    ``context.negation``); ``role`` what a match does there (``activity``, ``aim``, ``criterion``,
    ``exception`` for negated_patterns / not_a_response / not_a_goal, ``context``).
    """

    id: str
    group: str
    role: str
    text: str
    sources: tuple[str, ...]
    regex: re.Pattern[str]
    weight: float = 1.0
    direction: str = ""
    window: int | str | None = None
    fires: tuple[str, ...] = ()
    quiet: tuple[str, ...] = ()
    has_examples: bool = False

    @property
    def code(self) -> str:
        """The CPT code of an activity rule ('' for others)."""
        return self.group.split(".", 1)[1] if self.group.startswith("activities.") else ""

    @property
    def criterion(self) -> str:
        """The criterion a criteria rule belongs to ('' for others)."""
        parts = self.group.split(".")
        return parts[1] if parts[0] == "criteria" else ""


@dataclass(frozen=True, slots=True)
class ContextCategory:
    """A ConText category (negation, terminators, refusal, plan, purpose) and its triggers."""

    name: str
    why: str
    triggers: tuple[Rule, ...]

    def with_direction(self, *directions: str) -> tuple[Rule, ...]:
        return tuple(t for t in self.triggers if t.direction in directions)


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
    topic: re.Pattern[str] = re.compile(r"(?!x)x")  # education topics: matches after it are subjects, not tasks
    scope_end: re.Pattern[str] = re.compile(r"(?!x)x")  # terminators + sequels: where a refusal's or a topic's scope ends
    skilled_fast: tuple[re.Pattern[str], ...] = ()
    skilled_negated_fast: tuple[re.Pattern[str], ...] = ()
    response_fast: tuple[re.Pattern[str], ...] = ()
    goal_fast: tuple[re.Pattern[str], ...] = ()
    # ----- for explaining and testing (not read by the hot loops)
    rules: tuple[Rule, ...] = ()
    context: dict[str, ContextCategory] = field(default_factory=dict)
    terminators: re.Pattern[str] | None = None  # ConText TERMINATE: a negation's scope ends here
    # parallel to skilled/skilled_negated/response/not_a_response/goal/not_a_goal: the entry ids
    skilled_ids: tuple[str, ...] = ()
    skilled_negated_ids: tuple[str, ...] = ()
    response_ids: tuple[str, ...] = ()
    not_a_response_ids: tuple[str, ...] = ()
    goal_ids: tuple[str, ...] = ()
    not_a_goal_ids: tuple[str, ...] = ()

    prefilter: Prefilter | None = None  # over the ``fast`` patterns of activities and criteria
    context_prefilter: Prefilter | None = None  # the same over the ConText kinds (plan, purpose, topic, refusal, scope_end)
    names_prefilter: Prefilter | None = None  # the same over the intervention names, by code

    def name_codes(self, scan: str) -> frozenset[str]:
        """The codes whose intervention names can occur in ``scan`` (the ``lowered`` text)."""
        if self.names_prefilter is None:
            return frozenset(self.intervention_names)
        return self.names_prefilter.candidates(scan)

    def context_kinds(self, scan: str) -> frozenset[str]:
        """The ConText kinds that can occur in ``scan`` (the ``lowered`` text); all when unknown."""
        if self.context_prefilter is None:
            return frozenset(("plan", "purpose", "topic", "refusal", "scope_end"))
        return self.context_prefilter.candidates(scan)

    def candidates(self, scan: str) -> frozenset[str]:
        """Ids of the activity and criteria entries that can match ``scan`` (the ``lowered`` note).

        One linear RE2 pass (``plugin.prefilter``); an entry outside the set provably has no match,
        so a hot loop may skip it. Without google-re2 every entry is a candidate.
        """
        if self.prefilter is None:
            return frozenset(r.id for r in self.rules)
        return self.prefilter.candidates(scan)

    def rule(self, rule_id: str) -> Rule:
        """The entry with this id (``KeyError`` when none)."""
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)


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


def literal_pattern(literal: str) -> str:
    """A ConText ``literal`` as a regex: its words escaped, any whitespace between them."""
    return r"\s+".join(re.escape(w) for w in literal.split())


def entry_pattern(p: str, vetoes: list[str] | tuple[str, ...] = ()) -> str:
    """The pattern of an entry with its ``not`` phrases as a veto at the match start."""
    if not vetoes:
        return p
    return "(?!" + "|".join(f"(?:{v})" for v in vetoes) + f")(?:{p})"


# ----------------------------------------------------------------------------- parsing


class _Compiler:
    """Compiles patterns, naming file, path and entry id in every error."""

    def __init__(self, file: str, sources: dict[str, str]) -> None:
        self.file = file
        self.sources = sources

    def fail(self, message: str, where: str, rule_id: str = "") -> RuleSetError:
        return RuleSetError(f"[{rule_id}] {message}" if rule_id else message, file=self.file, path=where)

    def compile(self, pattern: str, where: str, rule_id: str = "", *, wrap: bool = True, fast: bool = False) -> re.Pattern[str]:
        text = lower_pattern(pattern) if fast else pattern
        try:
            return re.compile(bounded(text) if wrap else text, re.ASCII if fast else _FLAGS)
        except re.error as exc:
            raise self.fail(f"invalid regex ({exc})", where, rule_id) from exc

    def alternation(self, patterns: list[str], where: str) -> re.Pattern[str]:
        if not patterns:
            return re.compile(r"(?!x)x")  # an empty category matches nothing
        return self.compile("|".join(f"(?:{p})" for p in patterns), where)

    def source_keys(self, own: list[str] | str | None, default: list[str] | str, where: str, rule_id: str = "") -> tuple[str, ...]:
        keys = own if own is not None else default
        keys = [keys] if isinstance(keys, str) else list(keys)
        if not keys:
            raise self.fail("no source", where, rule_id)
        for key in keys:
            if key not in self.sources:
                raise self.fail(f"source {key!r} is not defined under `sources`", where, rule_id)
        return tuple(keys)


def _validation_error(exc: ValidationError, raw: Any, file: str) -> RuleSetError:
    first = exc.errors()[0]
    loc = tuple(first.get("loc", ()))
    path = ".".join(str(p) for p in loc)
    # name the entry id when the error sits inside one
    node, rule_id = raw, ""
    for part in loc:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            break
        if isinstance(node, dict) and isinstance(node.get("id"), str):
            rule_id = node["id"]
    message = first.get("msg", "invalid")
    return RuleSetError(f"[{rule_id}] {message}" if rule_id else message, file=file, path=path)


def parse_examples(raw: Any, *, file: str = EXAMPLES_FILE) -> dict[str, _Examples]:
    """Validate ``lexicon.examples.yaml``: ``{entry id: {fires: [...], quiet: [...]}}``."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise RuleSetError("expected a mapping of entry id to {fires, quiet}", file=file)
    out: dict[str, _Examples] = {}
    for rule_id, item in raw.items():
        try:
            out[str(rule_id)] = _Examples.model_validate(item or {})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in (rule_id, *first.get("loc", ())))
            raise RuleSetError(f"[{rule_id}] {first.get('msg', 'invalid')}", file=file, path=where) from exc
    return out


def parse_lexicon(raw: Any, *, examples: Any = None, file: str = LEXICON_FILE,  # noqa: C901, PLR0915 - validates and compiles each section of the document in turn; not split yet (engine speed work)
                  examples_file: str = EXAMPLES_FILE) -> Lexicon:
    """Validate and compile a lexicon document (the YAML already parsed), joining its examples."""
    try:
        doc = _LexiconFile.model_validate(raw)
    except ValidationError as exc:
        raise _validation_error(exc, raw, file) from exc
    c = _Compiler(file, doc.sources)
    ex = parse_examples(examples, file=examples_file)
    rules: list[Rule] = []
    seen: dict[str, str] = {}

    def add(rule_id: str, where: str, role: str, text: str, sources: tuple[str, ...], regex: re.Pattern[str],
            **extra: Any) -> None:
        if rule_id in seen:
            raise c.fail(f"duplicate id (also at {seen[rule_id]})", where, rule_id)
        seen[rule_id] = where
        e = ex.get(rule_id)
        group = where.rsplit("[", 1)[0]  # activities.97530 / criteria.<name>.<list> / context.<category>
        if group.startswith("activities."):
            group = group.removesuffix(".patterns")
        elif group.startswith("context."):
            group = group.removesuffix(".triggers")
        rules.append(Rule(rule_id, group, role, text, sources, regex,
                          fires=tuple(e.fires) if e else (), quiet=tuple(e.quiet) if e else (),
                          has_examples=e is not None, **extra))

    def entry(item: _Entry, where: str, default_source: list[str] | str, role: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
        for i, veto in enumerate(item.not_):
            c.compile(veto, f"{where}.not[{i}]", item.id)
        pattern = entry_pattern(item.p, item.not_)
        regex = c.compile(pattern, where, item.id)
        fast = c.compile(pattern, where, item.id, fast=True)
        sources = c.source_keys(item.source, default_source, where, item.id)
        add(item.id, where, "aim" if item.aim else role, item.p, sources, regex, weight=item.w)
        return regex, fast

    activities: dict[str, ActivityCategory] = {}
    for code, cat in doc.activities.items():
        c.source_keys(None, cat.source, f"activities.{code}.source")
        patterns = []
        for i, item in enumerate(cat.patterns):
            regex, fast = entry(item, f"activities.{code}.patterns[{i}]", cat.source, "activity")
            patterns.append(Pattern(regex, item.w, item.p, item.aim, fast, item.id))
        activities[code] = ActivityCategory(code=code, label=cat.label, patterns=tuple(patterns))

    crit = doc.criteria
    for needed in ("skilled-intervention", "patient-response", "functional-goal"):
        if needed not in crit:
            raise c.fail("criterion missing", f"criteria.{needed}")
    lists: dict[tuple[str, str], tuple[tuple[re.Pattern[str], ...], tuple[re.Pattern[str], ...], tuple[str, ...]]] = {}
    for name, criterion in crit.items():
        c.source_keys(None, criterion.source, f"criteria.{name}.source")
        for key in ("patterns", "negated_patterns", "not_a_response", "not_a_goal"):
            items: list[_Entry] = getattr(criterion, key)
            role = "criterion" if key == "patterns" else "exception"
            compiled = [entry(item, f"criteria.{name}.{key}[{i}]", criterion.source, role) for i, item in enumerate(items)]
            lists[(name, key)] = (tuple(r for r, _ in compiled), tuple(f for _, f in compiled), tuple(i.id for i in items))

    context: dict[str, ContextCategory] = {}
    ctx_patterns: dict[str, list[tuple[str, str]]] = {}  # category -> (pattern, direction)
    for name in ("negation", "terminators", "refusal", "plan", "purpose", "topic", "sequel"):
        ctx: _ContextCategory | None = getattr(doc.context, name)
        if ctx is None:
            ctx_patterns[name] = []
            continue
        triggers = []
        ctx_patterns[name] = []
        for i, t in enumerate(ctx.triggers):
            where = f"context.{name}.triggers[{i}]"
            pattern = t.p if t.p is not None else literal_pattern(t.literal or "")
            regex = c.compile(pattern, where, t.id, wrap=t.bounded)
            direction = t.direction or ctx.direction or "both"
            window = t.window if t.window is not None else ctx.window
            sources = c.source_keys(t.source, doc.context.source, where, t.id)
            add(t.id, where, "context", t.literal if t.literal is not None else pattern, sources, regex,
                direction=direction, window=window)
            triggers.append(rules[-1])
            ctx_patterns[name].append((bounded(pattern) if t.bounded else pattern, direction))
        context[name] = ContextCategory(name, ctx.why, tuple(triggers))

    def alt(name: str, *directions: str) -> re.Pattern[str]:
        chosen = [p for p, d in ctx_patterns[name] if not directions or d in directions]
        if not chosen:
            return re.compile(r"(?!x)x")
        # each trigger is already word-bounded unless it says `bounded: false` (";"); the outer
        # bound is kept where every trigger has one (it changes nothing then, and keeps the
        # compiled patterns identical to the earlier loader's)
        wrap = all(t.bounded for t in getattr(doc.context, name).triggers)
        return c.compile("|".join(f"(?:{p})" for p in chosen), f"context.{name}", wrap=wrap)

    for rule_id in ex:
        if rule_id not in seen:
            raise RuleSetError(f"[{rule_id}] examples for an entry that does not exist", file=examples_file, path=rule_id)

    def get(name: str, key: str, part: int) -> Any:
        return lists.get((name, key), ((), (), ()))[part]

    from plugin.prefilter import build as build_prefilter

    scanned = [(p.id, p.fast.pattern) for cat in activities.values() for p in cat.patterns if p.fast is not None]
    for (_name, _key), (_plain, fast_list, ids) in lists.items():
        if fast_list:
            scanned += list(zip(ids, (f.pattern for f in fast_list), strict=True))
    prefilter = build_prefilter(scanned)
    # which ConText kinds can occur in a note at all, in one RE2 pass (most notes have no refusal,
    # topic or purpose, and then no sentence is searched for one)
    context_prefilter = build_prefilter(
        [(name, lower_pattern(alt(name).pattern)) for name in ("plan", "purpose", "topic", "refusal") if ctx_patterns.get(name)]
        + [("scope_end", lower_pattern(c.alternation([p for p, _ in ctx_patterns["terminators"] + ctx_patterns.get("sequel", [])],
                                                       "context.sequel").pattern))]
    )

    names = {code: _names(c, n, f"interventions.codes.{code}") for code, n in doc.interventions.codes.items()}
    names_prefilter = build_prefilter([(code, lower_pattern(regex.pattern)) for code, regex in names.items()])

    return Lexicon(
        prefilter=prefilter,
        context_prefilter=context_prefilter,
        names_prefilter=names_prefilter,
        version=doc.version,
        sources=doc.sources,
        intervention_names=names,
        activities=activities,
        negation_before=alt("negation", "forward", "both"),
        negation_after=alt("negation", "backward", "both"),
        refusal=alt("refusal"),
        plan=alt("plan"),
        purpose=alt("purpose"),
        topic=alt("topic"),
        scope_end=alt("terminators") if not ctx_patterns.get("sequel") else c.alternation(
            [p for p, _ in ctx_patterns["terminators"] + ctx_patterns["sequel"]], "context.sequel"),
        skilled=get("skilled-intervention", "patterns", 0),
        skilled_negated=get("skilled-intervention", "negated_patterns", 0),
        response=get("patient-response", "patterns", 0),
        not_a_response=get("patient-response", "not_a_response", 0),
        goal=get("functional-goal", "patterns", 0),
        not_a_goal=get("functional-goal", "not_a_goal", 0),
        skilled_fast=get("skilled-intervention", "patterns", 1),
        skilled_negated_fast=get("skilled-intervention", "negated_patterns", 1),
        response_fast=get("patient-response", "patterns", 1),
        goal_fast=get("functional-goal", "patterns", 1),
        rules=tuple(rules),
        context=context,
        terminators=alt("terminators"),
        skilled_ids=get("skilled-intervention", "patterns", 2),
        skilled_negated_ids=get("skilled-intervention", "negated_patterns", 2),
        response_ids=get("patient-response", "patterns", 2),
        not_a_response_ids=get("patient-response", "not_a_response", 2),
        goal_ids=get("functional-goal", "patterns", 2),
        not_a_goal_ids=get("functional-goal", "not_a_goal", 2),
    )


def _names(c: _Compiler, patterns: list[str], where: str) -> re.Pattern[str]:
    for i, p in enumerate(patterns):
        c.compile(p, f"{where}[{i}]")
    return c.alternation(patterns, where)


def read_lexicon_dir(directory: Path) -> Lexicon:
    """Parse ``lexicon.yaml`` (and ``lexicon.examples.yaml`` when present) from a rules directory."""
    from plugin.ruleset import read_yaml  # the one YAML reader of a ruleset directory

    raw = read_yaml(directory / LEXICON_FILE)
    examples_path = directory / EXAMPLES_FILE
    examples = read_yaml(examples_path) if examples_path.is_file() else None
    return parse_lexicon(raw, examples=examples)


def load_lexicon(path: str | Path | None = None) -> Lexicon:
    """The lexicon of a ruleset directory (default the packaged ``plugin/data``), parsed once per directory.

    A thin wrapper over ``plugin.ruleset.load_ruleset`` so there is one cache, keyed by directory.
    """
    from plugin.ruleset import load_ruleset

    return load_ruleset(path).lexicon
