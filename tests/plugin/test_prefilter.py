"""The RE2 prefilter never hides a match: an entry it leaves out has no match in the text."""
from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
import yaml

from plugin import load_ruleset
from plugin.lexicon import lowered
from plugin.prefilter import Prefilter, build, required_literals, superset_pattern

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


def _assert_hides_no_match(candidates, pairs) -> None:
    """Over every text we have: an entry left out of ``candidates(scan)`` has no match, and some are left out."""
    skipped = 0
    for text in _texts():
        scan = lowered(text)
        possible = candidates(scan)
        for rule_id, regex in pairs:
            if rule_id not in possible:
                skipped += 1
                assert regex.search(scan) is None, (rule_id, text[:80])
    assert skipped > 0  # it does filter


def test_no_entry_with_a_match_is_left_out() -> None:
    lex = load_ruleset().lexicon
    assert lex.prefilter is not None and lex.prefilter.filters
    _assert_hides_no_match(lex.candidates, _scanned(lex))


def test_the_literal_filter_leaves_out_no_entry_with_a_match() -> None:
    """The filter used without google-re2, on the same entries and texts."""
    pairs = _scanned(load_ruleset().lexicon)
    plain = build([(rule_id, regex.pattern) for rule_id, regex in pairs], use_re2=False)
    assert plain.matcher is None and plain.filters
    _assert_hides_no_match(plain.candidates, pairs)


def test_context_kinds_and_named_codes_hide_no_trigger() -> None:
    """The ConText and intervention-name prefilters: a kind or code left out has no match."""
    lex = load_ruleset().lexicon
    kinds = {"plan": lex.plan, "purpose": lex.purpose, "topic": lex.topic, "refusal": lex.refusal, "scope_end": lex.scope_end}
    left_out = 0
    for text in _texts():
        scan = lowered(text)
        found_kinds, named = lex.context_kinds(scan), lex.name_codes(scan)
        for kind, regex in kinds.items():
            if kind not in found_kinds:
                left_out += 1
                assert regex.search(text) is None, (kind, text[:80])
        for code, regex in lex.intervention_names.items():
            if code not in named:
                left_out += 1
                assert regex.search(text) is None, (code, text[:80])
    assert left_out > 0


@pytest.mark.parametrize(("pattern", "expected"), [
    (r"carr(?:y|ies|ied|ying)", {"carry", "carried", "carries"}),  # "carrying" holds "carry": dropped
    (r"(?:sit|stand)s?(?![a-z])", {"sit", "stand"}),
    (r"(?<![a-z0-9])(?:lift(?!\s+off))(?![a-z0-9])", {"lift"}),  # lookarounds are zero-width
    (r"min(?:ute)?s?", {"min"}),
    (r"[bp]ox", {"box", "pox"}),  # a small class is a choice of literals
    (r"x\d+ reps", {" reps"}),  # the longest run wins
    (r"(?:wheel)+chair", {"wheel"}),  # a repeated body is required once, but joins no run
    (r"(?ai:Walk)ed", {"walked"}),  # a case-insensitive group matches lowercased text
    (r"(?i:Walk)ed", {"wal"}),  # under Unicode IGNORECASE 'k' also matches the Kelvin sign
    (r"(a)\1", {"a"}),  # the group is required; the backreference adds nothing known
])
def test_required_literals(pattern: str, expected: set[str]) -> None:
    assert required_literals(pattern) == expected


@pytest.mark.parametrize("pattern", [
    r"\d+\s*min",  # only classes: nothing is required... except "min"
])
def test_required_literals_keep_the_literal_part(pattern: str) -> None:
    assert required_literals(pattern) == {"min"}


@pytest.mark.parametrize("pattern", [
    r".*", r"\d{2,}", r"(?:abc)?", r"a|.", r"[^x]y?", r"(?i)s", r"(?i)sik", "(",
])
def test_no_requirement_where_none_is_provable(pattern: str) -> None:
    """An optional body, an alternative with no literal, a negated class, under Unicode IGNORECASE
    the letters Python folds with non-ASCII ones ('s' and the long s, 'k' and the Kelvin sign), bad syntax."""
    assert required_literals(pattern) is None


def test_required_literals_hold_in_every_match_of_random_texts() -> None:
    """Soundness by search: random texts built from the patterns' own pieces; wherever a pattern
    matches, one of its literals is in the text."""
    rng = random.Random(97530)
    alphabet = ["carr", "y", "ies", "sit", "stand", "s", " ", "lift", " off", "min", "ute", "b", "p", "ox", "x1",
                "2", " reps", "wheel", "chair", "walk", "ed", "ſ", "K", "İ"]
    patterns = [r"carr(?:y|ies|ied|ying)", r"(?:sit|stand)s?(?![a-z])", r"lift(?!\s+off)", r"min(?:ute)?s?",
                r"[bp]ox", r"x\d+ reps", r"(?:wheel)+chair", r"(?i:walk)ed", r"(?:s|x)(?:it|ox)+", r"(?:ab|c){2,3}d"]
    for _ in range(3000):
        text = lowered("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12))))  # what patterns run on
        for pattern in patterns:
            needed = required_literals(pattern)
            if needed is not None and re.search(pattern, text):
                assert any(s in text for s in needed), (pattern, text)


@pytest.mark.parametrize("use_re2", [True, False])
def test_both_filters_leave_out_only_entries_without_a_match(use_re2: bool) -> None:
    entries = [("ta.carry", r"carr(?:y|ies|ied|ying)"), ("ta.lift", r"lift(?!\s+off)"), ("any", r".+"),
               ("dots", r"c\.o\.g\."), ("tab", "x\ty"), ("accent", "\u00e9t\u00e9"), ("brace", r"a\{b")]
    pf = build(entries, use_re2=use_re2)
    assert pf.filters and (pf.matcher is not None) == use_re2  # google-re2 is a dependency
    assert pf.candidates("carried the box") == {"ta.carry", "any"}
    assert pf.candidates("pt c.o.g. high") == {"dots", "any"}
    assert pf.candidates("x\ty") == {"tab", "any"}
    assert pf.candidates("l'\u00e9t\u00e9 a{b") == {"accent", "brace", "any"}
    # ".+" has no required literal (always a candidate without RE2); its superset cannot match ""
    assert pf.candidates("") == (set() if use_re2 else {"any"})


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
    assert Prefilter(ids=("a", "b")).candidates("") == set()  # an empty filter lets nothing through but ``always``
