"""The RE2 prefilter never hides a match: an entry it leaves out has no match in the text."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from plugin import load_ruleset
from plugin.lexicon import lowered
from plugin.prefilter import Prefilter, build, superset_pattern

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"


def _texts() -> list[str]:
    texts = [c["note"] for c in yaml.safe_load((ROOT / "tests" / "plugin" / "cases_97530.yaml").read_text())["cases"]]
    texts += [t for r in load_ruleset().lexicon.rules for t in r.fires + r.quiet]
    for name in ("cases/dev.jsonl", "cases/dev2.jsonl"):
        path = SHARED / name
        if path.is_file():
            texts += [json.loads(line)["note"] for line in path.read_text().splitlines() if line.strip()]
    texts += ["a" * 5000, "\u2003" * 3000 + "TA 25 min", "Treatment time" + "\x0c" * 500, "x\x0bx transfer\x0bwith\x0bCGA"]
    return texts


def _scanned(lex):
    pairs = [(p.id, p.fast) for cat in lex.activities.values() for p in cat.patterns]
    for ids, fast in ((lex.skilled_ids, lex.skilled_fast), (lex.skilled_negated_ids, lex.skilled_negated_fast),
                      (lex.response_ids, lex.response_fast), (lex.goal_ids, lex.goal_fast)):
        pairs += list(zip(ids, fast, strict=True))
    return pairs


def test_no_entry_with_a_match_is_left_out() -> None:
    lex = load_ruleset().lexicon
    assert lex.prefilter is not None and lex.prefilter.available  # google-re2 is a dependency
    pairs = _scanned(lex)
    skipped = 0
    for text in _texts():
        scan = lowered(text)
        possible = lex.candidates(scan)
        for rule_id, regex in pairs:
            if rule_id not in possible:
                skipped += 1
                assert regex.search(scan) is None, (rule_id, text[:80])
    assert skipped > 0  # it does filter


@pytest.mark.parametrize(("pattern", "expected"), [
    (r"(?<![A-Za-z0-9])(?:lift(?!\s+off))(?![A-Za-z0-9])", r"(?:lift)"),
    (r"a[\s-]b", "a[\\t\\n\\x0b\\x0c\\r -]b"),
    (r"a\sb", "a[\\t\\n\\x0b\\x0c\\r ]b"),
    (r"(?:x(?=y))+z", r"(?:x)+z"),
    (r"[(?!]x", r"[(?!]x"),
])
def test_superset_pattern_drops_lookarounds_and_keeps_python_whitespace(pattern: str, expected: str) -> None:
    assert superset_pattern(pattern) == expected


def test_unrewritable_patterns_stay_candidates() -> None:
    assert superset_pattern(r"[^\S\n]x") is None
    assert superset_pattern(r"(a)\1") is None
    pf = build([("a", r"(a)\1"), ("b", "bee")])
    assert "a" in pf.candidates("zzz") and "b" not in pf.candidates("zzz")
    assert Prefilter(ids=("a", "b")).candidates("") == {"a", "b"}  # without RE2 everything is a candidate
