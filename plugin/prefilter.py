"""One RE2 pass that says which lexicon entries cannot match a note, so Python ``re`` skips them.

Why a prefilter and not RE2 as the matcher (docs/rules.md, "google-re2: decided with data"): the
lexicon's meaning rests on lookarounds (the whole-word wrapper, ``not`` vetoes, a few internal
lookaheads) that RE2 does not have. A pattern with its lookarounds removed matches a superset of
what the original matches, so if that superset is absent from the note the entry cannot fire.
One ``re2.Set`` scan over a note is linear and takes ~7 ms on 60,000 characters for all entries;
Python ``re`` then runs only the entries that can match. Verdicts cannot change: an entry is
skipped only when it provably has no match. Without ``google-re2`` installed every entry is a
candidate (the engine is then just slower on long notes).

    >>> pf = build([("ta.carry", r"carr(?:y|ies|ied|ying)"), ("ta.lift", r"lift(?!\\s+off)")])
    >>> sorted(pf.candidates("carried the box")) if pf.available else ["ta.carry"]
    ['ta.carry']
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

try:  # an optional accelerator: the engine is correct without it
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


@dataclass(frozen=True, slots=True, eq=False)
class Prefilter:
    """Which entries can match a text: ``candidates(text)`` (``None`` entries are always in)."""

    ids: tuple[str, ...] = ()
    always: frozenset[str] = frozenset()
    matcher: Any = field(default=None, repr=False)

    @property
    def available(self) -> bool:
        return self.matcher is not None

    def candidates(self, text: str) -> frozenset[str]:
        if self.matcher is None:
            return frozenset(self.ids) | self.always
        hits = self.matcher.Match(text) or ()  # the binding returns None when nothing matches
        return frozenset(self.ids[i] for i in hits) | self.always


def build(entries: Iterable[tuple[str, str]]) -> Prefilter:
    """A prefilter for (id, pattern) pairs; patterns as matched (e.g. lowercased for ``lowered`` text)."""
    items = list(entries)
    if _re2 is None:
        return Prefilter(ids=tuple(i for i, _ in items))
    options = _re2.Options()
    options.max_mem = 64 << 20
    options.log_errors = False
    matcher = _re2.Set.SearchSet(options)
    ids: list[str] = []
    always: set[str] = set()
    for rule_id, pattern in items:
        rewritten = superset_pattern(pattern)
        if rewritten is None:
            always.add(rule_id)
            continue
        try:
            index = matcher.Add(rewritten)
        except Exception:  # noqa: BLE001 - RE2 refuses some Python syntax: keep the entry as a candidate
            always.add(rule_id)
            continue
        assert index == len(ids)
        ids.append(rule_id)
    if not ids:
        return Prefilter(ids=tuple(i for i, _ in items))
    if matcher.Compile() is False:  # the binding returns None on success, False when out of memory
        return Prefilter(ids=tuple(i for i, _ in items))
    return Prefilter(ids=tuple(ids), always=frozenset(always), matcher=matcher)
