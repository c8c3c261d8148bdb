"""Test a ruleset's own examples: each entry alone, and each entry's effect through the engine.

Why two levels, in the manner of semgrep-rules' paired test files: on the entry alone, every
``fires`` text must match the entry's pattern and no ``quiet`` text may (a near miss documents
where the pattern stops); through the engine, removing the entry must change how the engine
reads at least one of its own ``fires`` texts (``ablation``), so no entry is dead weight
shadowed by another. ``cds97530 rules test`` and ``tests/plugin/test_rule_examples.py`` /
``test_rule_ablation.py`` run these functions; nothing here prints.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from plugin.lexicon import ActivityCategory, Lexicon, Rule, bounded
from plugin.model import Evidence

_FLAGS = re.IGNORECASE | re.ASCII
_NEVER = re.compile(r"(?!x)x")


@dataclass(frozen=True, slots=True)
class ExampleFailure:
    """One way an entry's examples fail: ``kind`` is missing-fires, missing-quiet, fires, quiet or ablation."""

    rule_id: str
    kind: str
    text: str
    problem: str

    def __str__(self) -> str:
        quoted = f" {self.text!r}" if self.text else ""
        return f"{self.rule_id}: {self.kind}{quoted}: {self.problem}"


def entry_matches(rule: Rule, text: str) -> bool:
    """The entry alone, as the engine compiles it (word-bounded, its ``not`` vetoes applied)."""
    return rule.regex.search(text) is not None


def check_entry(rule: Rule) -> list[ExampleFailure]:
    """Paired examples of one entry on the entry alone."""
    out: list[ExampleFailure] = []
    if not rule.fires:
        out.append(ExampleFailure(rule.id, "missing-fires", "", "no `fires` examples in lexicon.examples.yaml"))
    if not rule.quiet:
        out.append(ExampleFailure(rule.id, "missing-quiet", "", "no `quiet` examples (near misses) in lexicon.examples.yaml"))
    for text in rule.fires:
        if not entry_matches(rule, text):
            out.append(ExampleFailure(rule.id, "fires", text, "the entry does not match this text"))
    for text in rule.quiet:
        m = rule.regex.search(text)
        if m is not None:
            out.append(ExampleFailure(rule.id, "quiet", text, f"the entry matches {m.group(0)!r}"))
    return out


def check_examples(lexicon: Lexicon) -> list[ExampleFailure]:
    """Every entry's paired examples on the entry alone."""
    return [f for rule in lexicon.rules for f in check_entry(rule)]


# --- through the engine -------------------------------------------------------------------------


def reading_outcome(text: str, lexicon: Lexicon) -> tuple[object, ...]:
    """What the engine reads in ``text`` billed as 97530: labelled clauses with their scores, stated
    aims, and the spans of skilled input, responses, goals and group evidence."""
    from plugin.layout import read_layout
    from plugin.reading import read_service

    layout = read_layout(text, lexicon)
    r = read_service(text, layout, lexicon, note_id="example")
    return (
        tuple((c.span, c.code, tuple(sorted(c.scores.items()))) for c in r.activity_clauses),
        tuple(sorted(r.purpose_scores.items())),
        _spans(r.skilled), _spans(r.response), _spans(r.goal), _spans(r.group),
    )


def _spans(items: Iterable[Evidence]) -> tuple[tuple[int, int], ...]:
    return tuple((e.start, e.end) for e in items)


def without(lexicon: Lexicon, rule_id: str) -> Lexicon:
    """The lexicon with one entry removed (for ablation); ``KeyError`` when no entry has the id."""
    rule = lexicon.rule(rule_id)
    if rule.group.startswith("activities."):
        code = rule.code
        cat = lexicon.activities[code]
        kept = tuple(p for p in cat.patterns if p.id != rule_id)
        return replace(lexicon, activities={**lexicon.activities, code: ActivityCategory(cat.code, cat.label, kept)},
                       rules=_rules_without(lexicon, rule_id))
    if rule.group.startswith("criteria."):
        return _criterion_without(lexicon, rule)
    if rule.group.startswith("context."):
        return _context_without(lexicon, rule)
    raise KeyError(rule_id)


def _rules_without(lexicon: Lexicon, rule_id: str) -> tuple[Rule, ...]:
    return tuple(r for r in lexicon.rules if r.id != rule_id)


_CRITERION_FIELDS = {
    "criteria.skilled-intervention.patterns": ("skilled", "skilled_fast", "skilled_ids"),
    "criteria.skilled-intervention.negated_patterns": ("skilled_negated", "skilled_negated_fast", "skilled_negated_ids"),
    "criteria.patient-response.patterns": ("response", "response_fast", "response_ids"),
    "criteria.patient-response.not_a_response": ("not_a_response", None, "not_a_response_ids"),
    "criteria.functional-goal.patterns": ("goal", "goal_fast", "goal_ids"),
    "criteria.functional-goal.not_a_goal": ("not_a_goal", None, "not_a_goal_ids"),
}


def _criterion_without(lexicon: Lexicon, rule: Rule) -> Lexicon:
    fields = _CRITERION_FIELDS.get(rule.group)
    if fields is None:
        raise KeyError(rule.id)
    plain, fast, ids_field = fields
    ids: tuple[str, ...] = getattr(lexicon, ids_field)
    keep = [i for i, rid in enumerate(ids) if rid != rule.id]
    changes: dict[str, Any] = {  # Lexicon fields named at run time: no static type to check them against
        plain: tuple(getattr(lexicon, plain)[i] for i in keep),
        ids_field: tuple(ids[i] for i in keep),
        "rules": _rules_without(lexicon, rule.id),
    }
    if fast is not None:
        changes[fast] = tuple(getattr(lexicon, fast)[i] for i in keep)
    return replace(lexicon, **changes)


def _alternation(rules: Iterable[Rule]) -> re.Pattern[str]:
    patterns = [r.regex.pattern for r in rules]
    if not patterns:
        return _NEVER
    return re.compile(bounded("|".join(f"(?:{p})" for p in patterns)), _FLAGS)


_LEXICON_FIELDS = ("refusal", "plan", "purpose", "terminators", "topic")


def _context_without(lexicon: Lexicon, rule: Rule) -> Lexicon:
    name = rule.group.split(".", 1)[1]
    cat = lexicon.context[name]
    kept = tuple(t for t in cat.triggers if t.id != rule.id)
    context = {**lexicon.context, name: replace(cat, triggers=kept)}
    changes: dict[str, Any] = {"context": context, "rules": _rules_without(lexicon, rule.id)}
    if name == "negation":
        changes["negation_before"] = _alternation(t for t in kept if t.direction in ("forward", "both"))
        changes["negation_after"] = _alternation(t for t in kept if t.direction in ("backward", "both"))
    elif name in _LEXICON_FIELDS:
        changes[name] = _alternation(kept)
    if name in ("terminators", "sequel"):  # a refusal's or topic's scope ends at either kind
        other = "sequel" if name == "terminators" else "terminators"
        changes["scope_end"] = _alternation([*kept, *(lexicon.context[other].triggers if other in lexicon.context else ())])
    return replace(lexicon, **changes)


def ablation_failures(lexicon: Lexicon, rules: Iterable[Rule] | None = None) -> list[ExampleFailure]:
    """Entries whose removal changes how the engine reads none of their own ``fires`` texts."""
    out: list[ExampleFailure] = []
    for rule in lexicon.rules if rules is None else rules:
        if not rule.fires:
            continue  # reported by check_entry
        reduced = without(lexicon, rule.id)
        if not any(reading_outcome(t, lexicon) != reading_outcome(t, reduced) for t in rule.fires):
            out.append(ExampleFailure(
                rule.id, "ablation", "",
                "removing the entry changes how the engine reads none of its `fires` examples "
                "(another entry already covers them: add a `fires` text only this entry reads, or merge it)",
            ))
    return out


# --- ReDoS ---------------------------------------------------------------------------------------


def redos_findings(pattern: str) -> list[str]:
    """regexploit's findings for one pattern: super-linear backtracking within one match attempt
    (``starriness`` 2+ is polynomial of that degree, 11 exponential). Needs the ``regexploit``
    package (the ``dev`` extra); ``ImportError`` without it.

    regexploit does not look inside the branches of an alternation, and a lexicon entry is usually
    one, so every alternative of every group is analysed on its own as well."""
    from regexploit.ast.sre import SreOpParser
    from regexploit.redos import find

    out: list[str] = []
    for part in dict.fromkeys([pattern, *_alternatives(pattern)]):
        if part is not pattern and not _REPEATS.search(part):
            continue  # no repeat, no backtracking to analyse
        try:
            parsed = SreOpParser().parse_sre(part)
        except Exception:  # noqa: BLE001 - a fragment regexploit cannot parse alone: the whole is analysed too
            continue
        out += [f"starriness {r.starriness} in {part[:60]!r}, e.g. {r.example()}" for r in find(parsed) if r.starriness >= 2]
    return out


_REPEATS = re.compile(r"(?<!\\)[*+]|(?<!\\)\{\d*,")  # a repeat that can take more than a fixed count


def _alternatives(pattern: str) -> list[str]:  # noqa: C901 - a character scanner over regex syntax: one branch per construct
    """Each ``|`` branch of the pattern and of every group in it, as a pattern of its own."""
    out: list[str] = []
    stack: list[tuple[int, list[int]]] = [(-1, [])]  # (content start, positions of | at this depth)
    i, in_class = 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
            if pattern[i + 1:i + 2] == "]":
                i += 1
        elif ch == "(":
            start = i + 1
            if pattern.startswith("?", start):  # (?:  (?=  (?!  (?<=  (?<!  (?P<name>
                close = pattern.find(":", start) if pattern.startswith("?:", start) else -1
                if close == start + 1:
                    start = close + 1
                elif pattern.startswith(("?=", "?!"), start):
                    start += 2
                elif pattern.startswith(("?<=", "?<!"), start):
                    start += 3
            stack.append((start, []))
        elif ch == "|":
            stack[-1][1].append(i)
        elif ch == ")" and len(stack) > 1:
            start, bars = stack.pop()
            out += _split(pattern, start, i, bars)
        i += 1
    start, bars = stack[0]
    out += _split(pattern, 0, len(pattern), bars)
    return [p for p in out if p]


def _split(pattern: str, start: int, end: int, bars: list[int]) -> list[str]:
    if not bars:
        return []
    cuts = [start, *[b + 1 for b in bars]]
    ends = [*bars, end]
    return [pattern[a:b] for a, b in zip(cuts, ends, strict=True)]


def redos_failures(lexicon: Lexicon) -> list[ExampleFailure]:
    """Every entry (and heading-name list) whose compiled pattern backtracks super-linearly."""
    patterns = [(r.id, r.regex.pattern) for r in lexicon.rules]
    patterns += [(f"interventions.{code}", regex.pattern) for code, regex in lexicon.intervention_names.items()]
    return [ExampleFailure(rule_id, "redos", "", finding) for rule_id, pattern in patterns for finding in redos_findings(pattern)]
