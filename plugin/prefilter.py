"""Which lexicon entries cannot match a note, so Python ``re`` skips them in the hot loops.

Why a prefilter and not RE2 as the matcher (docs/rules.md, "google-re2: decided with data"): the
lexicon's meaning rests on lookarounds (the whole-word wrapper, ``not`` vetoes, a few internal
lookaheads) that RE2 does not have. A pattern with its lookarounds removed matches a superset of
what the original matches, so if that superset has no match in the note the entry cannot fire.

How: RE2's FilteredRE2 (``re2.Filter``). It extracts from each superset pattern the literal atoms a
match must contain, finds the atoms present with one Aho-Corasick-like pass, and runs only those
patterns' own RE2 automata. Until 2026-12 this module put all ~190 supersets in one ``re2.Set``:
that DFA is built lazily, one state per new character context, so a note it had not seen cost
~4.9 ms (0.05 ms when repeated, which the benchmark, repeating its 60 notes, hid). The filter costs
~0.4 ms on a new note and keeps the same entries.

Without google-re2 each pattern's *required literals* (strings one of which every match contains,
found with Python's own regex parser: "carr(?:y|ies|ied)" needs "carry", "carries" or "carried")
are looked up with ``in``: about three times as many candidates, still sound. Verdicts cannot change
either way: an entry is skipped only when it provably has no match (``tests/plugin/test_prefilter.py``
checks that on every note and example we have).

    >>> pf = build([("ta.carry", r"carr(?:y|ies|ied|ying)"), ("ta.lift", r"lift(?!\\s+off)")])
    >>> sorted(pf.candidates("carried the box"))
    ['ta.carry']
    >>> sorted(required_literals(r"(?:sit|stand)s?\\b") or ())
    ['sit', 'stand']
"""
from __future__ import annotations

import importlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

try:  # an optional accelerator: the engine is correct (and still filters) without it
    import re2 as _re2
except ImportError:  # pragma: no cover - exercised where the wheel is missing
    _re2 = None

_ASCII_SPACE = "\\t\\n\\x0b\\x0c\\r "  # Python's \s under re.ASCII (RE2's \s lacks \v)


def superset_pattern(pattern: str) -> str | None:  # noqa: C901 - a character scanner over regex syntax: one branch per construct
    """``pattern`` without lookaround groups, in RE2 syntax; ``None`` when it cannot be rewritten
    safely (the entry is then always a candidate)."""
    out: list[str] = []
    i, n = 0, len(pattern)
    in_class = False
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            if i + 1 >= n:
                return None
            nxt = pattern[i + 1]
            if nxt == "s":
                out.append(_ASCII_SPACE if in_class else f"[{_ASCII_SPACE}]")
            elif nxt == "S":
                if in_class:
                    return None
                out.append(f"[^{_ASCII_SPACE}]")
            elif nxt in "AZ" or nxt.isdigit():  # \A \Z, backreferences
                return None
            else:
                out.append(pattern[i:i + 2])
            i += 2
            continue
        if in_class:
            if ch == "]":
                in_class = False
            out.append(ch)
            i += 1
            continue
        if ch == "[":
            in_class = True
            out.append(ch)
            # a ']' right after '[' or '[^' is a literal
            j = i + 1
            if j < n and pattern[j] == "^":
                out.append("^")
                j += 1
            if j < n and pattern[j] == "]":
                out.append("\\]")
                j += 1
            i = j
            continue
        if pattern.startswith(("(?=", "(?!", "(?<=", "(?<!"), i):
            end = _group_end(pattern, i)
            if end is None:
                return None
            i = end  # drop the assertion: what remains matches a superset
            continue
        if ch == "$" or ch == "^":
            out.append(ch)  # same meaning without MULTILINE
            i += 1
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _group_end(pattern: str, start: int) -> int | None:
    """Index just past the group that opens at ``start``."""
    depth = 0
    i, n = start, len(pattern)
    in_class = False
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            if ch == "]":
                in_class = False
        elif ch == "[":
            in_class = True
            if i + 1 < n and pattern[i + 1] == "]":
                i += 1
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return None


_parser: Any = importlib.import_module("re._parser")  # Python's regex parser (sre_parse before 3.11)
_c: Any = importlib.import_module("re._constants")

MAX_STRINGS = 64
"""The most strings a literal set grows to while concatenating ("(?:a|b)(?:c|d)" is 4); past this
the set is cut where it stands (a shorter requirement, still sound)."""

MAX_CLASS = 8
"""A character class of at most this many characters ("[yi]") counts as a choice of literals."""

_UNSURE_UNDER_UNICODE_CASE = frozenset("iks")
"""Under IGNORECASE without ASCII, Python matches 'i' to 'İ', 'k' to the Kelvin sign and 's' to 'ſ',
which ``lowered`` text may keep as they are; a literal holding them proves nothing there."""


@dataclass(frozen=True, slots=True)
class _Info:
    exact: frozenset[str] | None = None  # every string the node can match, when few
    required: frozenset[str] | None = None  # any match holds one of these; None: nothing known


_NOTHING = _Info()
_EMPTY = _Info(frozenset({""}))


def _score(strings: frozenset[str] | None) -> tuple[int, int]:
    """Longer shortest literal first, then fewer literals: the more selective requirement."""
    if not strings or "" in strings:
        return (-1, 0)
    return (min(len(s) for s in strings), -len(strings))


def _best(*options: frozenset[str] | None) -> frozenset[str] | None:
    best: frozenset[str] | None = None
    for option in options:
        if _score(option) > _score(best):
            best = option
    return best if _score(best)[0] > 0 else None


def _concat(left: frozenset[str], right: frozenset[str]) -> frozenset[str] | None:
    if len(left) * len(right) > MAX_STRINGS:
        return None
    return frozenset(a + b for a in left for b in right)


def _sequence(items: Iterable[tuple[Any, Any]], icase: bool, ascii_only: bool) -> _Info:
    """A concatenation: literal runs are joined across nodes; the best run or sub-requirement wins."""
    run: frozenset[str] = frozenset({""})
    whole: frozenset[str] | None = frozenset({""})
    options: list[frozenset[str] | None] = []
    for op, av in items:
        info = _node(op, av, icase, ascii_only)
        whole = _concat(whole, info.exact) if whole is not None and info.exact is not None else None
        joined = _concat(run, info.exact) if info.exact is not None else None
        if joined is not None:
            run = joined
            continue
        options.append(run)
        if info.exact is not None:
            run = info.exact
        else:
            options.append(info.required)
            run = frozenset({""})
    options.append(run)
    return _Info(whole, _best(*options))


def _node(op: Any, av: Any, icase: bool, ascii_only: bool) -> _Info:  # noqa: C901 - one branch per regex construct
    if op is _c.LITERAL:
        ch = chr(av)
        if icase:
            if not ascii_only and (ch.lower() in _UNSURE_UNDER_UNICODE_CASE or not ch.isascii()):
                return _NOTHING
            ch = ch.lower()  # matched against lowercased text
        return _Info(frozenset({ch}))
    if op is _c.IN:
        chars: set[str] = set()
        for item_op, item in av:
            if item_op is _c.LITERAL:
                chars.add(chr(item))
            elif item_op is _c.RANGE and item[1] - item[0] < MAX_CLASS:
                chars.update(chr(x) for x in range(item[0], item[1] + 1))
            else:
                return _NOTHING  # a negated class, a category (\d, \s) or a wide range
        if icase:
            if not ascii_only and any(c.lower() in _UNSURE_UNDER_UNICODE_CASE or not c.isascii() for c in chars):
                return _NOTHING
            chars = {c.lower() for c in chars}
        return _Info(frozenset(chars)) if len(chars) <= MAX_CLASS else _NOTHING
    if op is _c.SUBPATTERN:
        _group, add_flags, del_flags, body = av
        inner = (icase or bool(add_flags & _c.SRE_FLAG_IGNORECASE)) and not del_flags & _c.SRE_FLAG_IGNORECASE
        return _sequence(body, inner, ascii_only or bool(add_flags & _c.SRE_FLAG_ASCII))
    if op is _c.ATOMIC_GROUP:
        return _sequence(av, icase, ascii_only)
    if op is _c.BRANCH:
        alternatives = [_sequence(alt, icase, ascii_only) for alt in av[1]]
        exact: frozenset[str] | None = None
        if all(a.exact is not None for a in alternatives):
            union = frozenset().union(*(a.exact for a in alternatives if a.exact is not None))
            exact = union if len(union) <= MAX_STRINGS else None
        needs = [_best(a.exact, a.required) for a in alternatives]
        required = None if any(n is None for n in needs) else frozenset().union(*(n for n in needs if n is not None))
        return _Info(exact, required)
    if op in (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT):
        low, high, body_items = av
        body = _sequence(body_items, icase, ascii_only)
        if low == 0:
            return _Info(body.exact | {""}) if high == 1 and body.exact is not None else _NOTHING
        if low == high == 1:
            return body
        return _Info(None, _best(body.exact, body.required))  # at least one copy of the body
    if op in (_c.AT, _c.ASSERT, _c.ASSERT_NOT):
        return _EMPTY  # zero-width: the text matched on either side is contiguous
    return _NOTHING  # any character, a backreference, a conditional group


def required_literals(pattern: str, flags: int = 0) -> frozenset[str] | None:
    """Strings one of which every match of ``pattern`` contains (lowercased where the pattern
    ignores case); ``None`` when no such set is known (the entry is then always a candidate).
    Literals that contain another of the set are dropped: the shorter one already admits them."""
    try:
        tree = _parser.parse(pattern, flags)
    except re.error:
        return None
    state = tree.state.flags
    info = _sequence(list(tree), bool(state & _c.SRE_FLAG_IGNORECASE), bool(state & _c.SRE_FLAG_ASCII))
    found = _best(info.exact, info.required)
    if found is None:
        return None
    return frozenset(s for s in found if not any(t != s and t in s for t in found))


@dataclass(frozen=True, slots=True, eq=False)
class Prefilter:
    """Which entries can match a text: ``candidates(text)``; entries in ``always`` are always in.

    With RE2, ``matcher`` is a ``re2.Filter`` over the superset patterns of ``ids``; without it,
    ``literals`` and ``admits`` say which entries each literal lets through."""

    ids: tuple[str, ...] = ()
    always: frozenset[str] = frozenset()
    matcher: Any = field(default=None, repr=False)
    literals: tuple[str, ...] = ()
    admits: tuple[tuple[str, ...], ...] = ()

    @property
    def filters(self) -> bool:
        """False when no entry has a known requirement (every entry is then a candidate)."""
        return self.matcher is not None or bool(self.literals)

    def candidates(self, text: str) -> frozenset[str]:
        if self.matcher is not None:
            hits = self.matcher.Match(text) or ()  # the wrapper returns None when nothing matches
            return frozenset(self.ids[i] for i in hits) | self.always
        out = set(self.always)
        for i, literal in enumerate(self.literals):
            if literal in text:
                out.update(self.admits[i])
        return frozenset(out)


def build(entries: Iterable[tuple[str, str]], *, use_re2: bool = True) -> Prefilter:
    """A prefilter for (id, pattern) pairs, patterns as matched (lowercase ones for ``lowered`` text)."""
    items = list(entries)
    if use_re2 and _re2 is not None:
        built = _re2_filter(items)
        if built is not None:
            return built
    return _literal_filter(items)


def _re2_filter(items: list[tuple[str, str]]) -> Prefilter | None:
    options = _re2.Options()
    options.max_mem = 64 << 20
    options.log_errors = False
    matcher = _re2.Filter()
    ids: list[str] = []
    always: set[str] = set()
    for rule_id, pattern in items:
        rewritten = superset_pattern(pattern)
        if rewritten is None:
            always.add(rule_id)
            continue
        try:
            index = matcher.Add(rewritten, options)
        except _re2.error:  # RE2 refuses some Python syntax: keep the entry as a candidate
            always.add(rule_id)
            continue
        if index != len(ids):  # pragma: no cover - RE2 numbers patterns in order
            return None
        ids.append(rule_id)
    if not ids:
        return None
    try:
        matcher.Compile()
    except _re2.error:  # pragma: no cover - out of memory
        return None
    return Prefilter(ids=tuple(ids), always=frozenset(always), matcher=matcher)


def _literal_filter(items: list[tuple[str, str]]) -> Prefilter:
    always: set[str] = set()
    admits: dict[str, list[str]] = {}
    for rule_id, pattern in items:
        needed = required_literals(pattern)
        if needed is None:
            always.add(rule_id)
            continue
        for literal in needed:
            admits.setdefault(literal, []).append(rule_id)
    literals = tuple(sorted(admits))
    return Prefilter(always=frozenset(always), literals=literals, admits=tuple(tuple(admits[s]) for s in literals))
