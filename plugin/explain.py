"""Explain an evaluation rule by rule: which entries fired where, and how each decision was made.

Why: a billing lead who sees a wrong card must find the rule that made it. ``explain_note`` /
``explain_resources`` evaluate as the engine does (same ruleset, same reading) and then replay
the lexicon entry by entry over the 97530 text, asking the engine's own scope functions
(``plugin.clauses``) what became of each match: counted, negated, planned for later, the
session's aim, refused, or outside the 97530 text. Nothing is re-decided here; the criteria and
the documented code are quoted from the evaluation and from ``plugin.reading``'s labelled
clauses (with their per-code scores). Pure: returns a value; ``render`` makes it text.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from plugin.clauses import Clause, after_cue, clauses, negated
from plugin.layout import read_layout
from plugin.lexicon import Lexicon, Rule
from plugin.model import Evidence, LineEvaluation, NoteText, VisitEvaluation
from plugin.reading import TA, Reading, read_service
from plugin.ruleset import Ruleset, load_ruleset

MAX_HITS_PER_RULE = 6


@dataclass(frozen=True, slots=True)
class Hit:
    """One match of one entry: where, what it quotes, and what the engine made of it."""

    rule_id: str
    start: int
    end: int
    text: str
    fate: str  # counted | negated | planned | aim | refused | after a cue | outside the 97530 text | trigger


@dataclass(frozen=True, slots=True)
class CriterionDecision:
    criterion: str
    status: str
    evidence: tuple[Evidence, ...]
    rules: tuple[tuple[str, ...], ...]  # per evidence: the entries that produced it
    message: str


@dataclass(frozen=True, slots=True)
class Explanation:
    ruleset: str
    ruleset_dir: str
    note_id: str
    line: LineEvaluation | None
    hits: tuple[Hit, ...]
    criteria: tuple[CriterionDecision, ...]
    clauses: tuple[tuple[tuple[int, int], str, dict[str, float], str], ...]  # span, label, scores, quote
    code_decision: str
    evaluation: VisitEvaluation


def explain_note(text: str, *, ruleset: Ruleset | None = None, payer: str | None = None, code: str = TA,
                 note_id: str = "note") -> Explanation:
    from plugin.engine import evaluate_note

    rs = ruleset or load_ruleset()
    evaluation = evaluate_note(text, code=code, payer=payer, note_id=note_id, ruleset=rs)
    return _explain(rs, evaluation, evaluation.notes)


def explain_resources(data: Any, *, ruleset: Ruleset | None = None, payer: str | None = None) -> Explanation:
    from plugin.engine import evaluate_resources

    rs = ruleset or load_ruleset()
    evaluation = evaluate_resources(data, payer=payer, ruleset=rs)
    return _explain(rs, evaluation, evaluation.notes)


def _explain(rs: Ruleset, evaluation: VisitEvaluation, notes: tuple[NoteText, ...]) -> Explanation:
    from plugin.engine import MAX_ANALYSED_CHARS, _primary_note

    lex = rs.lexicon
    line = next((ln for ln in evaluation.lines if ln.code == TA), None)
    note = _primary_note(notes, lex)
    if note is None or line is None:
        why = "no 97530 line" if line is None else "no readable note"
        return Explanation(rs.version, str(rs.directory), note.note_id if note else "", line, (), (), (), why, evaluation)
    text = note.text[:MAX_ANALYSED_CHARS]
    layout = read_layout(text, lex)
    reading = read_service(text, layout, lex, code=TA, note_id=note.note_id)
    cls = clauses(text, reading.context, layout, lex)
    hits = tuple(_hits(text, lex, cls))
    decisions = tuple(
        CriterionDecision(f.criterion, f.status.value, f.evidence, tuple(attribute(ev, lex, f.criterion) for ev in f.evidence), f.message)
        for f in line.findings
    )
    labelled = tuple((c.span, c.code, dict(c.scores), text[c.span[0]:c.span[1]]) for c in reading.activity_clauses)
    return Explanation(rs.version, str(rs.directory), note.note_id, line, hits, decisions, labelled,
                       _code_decision(reading, line), evaluation)


_CRITERION_GROUPS = {
    "dynamic-activity": ("activities.97530",),
    "skilled-intervention": ("criteria.skilled-intervention.patterns",),
    "patient-response": ("criteria.patient-response.patterns",),
    "functional-goal": ("criteria.functional-goal.patterns",),
}


def attribute(evidence: Evidence, lexicon: Lexicon, criterion: str) -> tuple[str, ...]:
    """The entries whose pattern produced ``evidence`` (exact span for a quoted match; any
    match inside it for a quoted clause). Evidence that already names its rules keeps them."""
    if evidence.rules:
        return evidence.rules
    groups = _CRITERION_GROUPS.get(criterion, ())
    out = []
    for rule in lexicon.rules:
        if rule.group not in groups:
            continue
        if rule.group.startswith("activities."):
            if rule.regex.search(evidence.text):
                out.append(rule.id)
        elif rule.regex.fullmatch(evidence.text):
            out.append(rule.id)
    return tuple(out)


def _fate(text: str, m_start: int, m_end: int, rule: Rule, clause: Clause | None, lex: Lexicon) -> str:
    if rule.role == "context":
        return "trigger"
    if clause is None:
        return "outside the 97530 text"
    if clause.refused:
        return "refused"
    if not clause.is_current(m_start):
        return "planned"
    if rule.role == "exception":
        return "exception"
    if rule.role == "aim" or (rule.group.startswith("activities.") and not clause.is_activity(m_start)):
        return "aim"
    if negated(text, m_start, m_end, clause, lex):
        return "negated"
    if rule.group.startswith("activities.") and after_cue(text, m_start, clause):
        return "after a cue"
    return "counted"


def _hits(text: str, lex: Lexicon, cls: list[Clause]) -> list[Hit]:
    ordered = sorted(cls, key=lambda c: c.start)
    out: list[Hit] = []
    for rule in lex.rules:
        for n, m in enumerate(rule.regex.finditer(text), start=1):
            clause = next((c for c in ordered if c.start <= m.start() < c.end and m.end() <= c.end), None)
            if rule.group.startswith("criteria.functional-goal") and clause is None:
                fate = "counted"  # goals are read across the whole note, not only the 97530 text
            else:
                fate = _fate(text, m.start(), m.end(), rule, clause, lex)
            out.append(Hit(rule.id, m.start(), m.end(), m.group(0), fate))
            if n >= MAX_HITS_PER_RULE:
                break
    return sorted(out, key=lambda h: (h.start, h.rule_id))


def _code_decision(reading: Reading, line: LineEvaluation) -> str:
    if reading.group:
        return f"97150: {len(reading.group)} sign(s) of two or more patients at once make the session group therapy"
    counts = Counter(c.code for c in reading.activity_clauses)
    if not counts:
        return "no activity clause was found in the 97530 text (the documented code stays 97530)"
    parts = ", ".join(f"{code} x{n}" for code, n in counts.most_common())
    ta = counts.get(TA, 0)
    others = {c: n for c, n in counts.items() if c != TA}
    if line.suggested_code:
        return (f"clauses labelled {parts}: {line.suggested_code} describes more clauses ({others.get(line.suggested_code, 0)}) "
                f"than 97530 ({ta}), so the line is recoded to {line.suggested_code}")
    if others:
        best = max(others.values())
        return (f"clauses labelled {parts}: no other code describes more clauses than 97530 ({best} vs {ta}); "
                "97530 stands (a tie stays with the clinician's code)")
    return f"clauses labelled {parts}: every activity clause is 97530"


def render(ex: Explanation) -> str:
    """The explanation as plain text for the terminal."""
    out = [f"ruleset: {ex.ruleset} ({ex.ruleset_dir})", f"note: {ex.note_id}"]
    if ex.line is None:
        out.append(ex.code_decision)
        return "\n".join(out)
    ln = ex.line
    verdict = f"verdict: {ln.verdict.value}" + (f" -> {ln.suggested_code}" if ln.suggested_code else "")
    out += [verdict, "", "rules that fired (position, entry, quote, what the engine made of it):"]
    for h in ex.hits:
        out.append(f"  {h.start:>5}-{h.end:<5} {h.rule_id:<34} {h.text[:60]!r:<40} {h.fate}")
    if not ex.hits:
        out.append("  (none)")
    out += ["", "criteria:"]
    for d in ex.criteria:
        out.append(f"  {d.criterion}: {d.status} — {d.message}")
        for ev, ids in zip(d.evidence, d.rules, strict=True):
            out.append(f"      {ev.start}-{ev.end} {ev.text[:80]!r} [{', '.join(ids) or 'no lexicon entry: layout/minutes'}]")
    out += ["", "documented code:"]
    for span, label, scores, quote in ex.clauses:
        score_text = ", ".join(f"{c} {v:g}" for c, v in sorted(scores.items(), key=lambda kv: -kv[1]))
        out.append(f"  {span[0]}-{span[1]} -> {label} ({score_text}) {quote[:70]!r}")
    out.append(f"  {ex.code_decision}")
    return "\n".join(out)
