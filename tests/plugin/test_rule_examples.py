"""Every lexicon entry carries paired examples that hold (semgrep-rules style), and cites a source.

On the entry alone: each ``fires`` text matches the entry's compiled pattern, no ``quiet`` text
does. An entry without either list, an example for an id that does not exist, or a source key
that ``sources`` does not define fails here (and in ``cds97530 rules test``).
"""
from __future__ import annotations

import copy

import pytest
import yaml

from plugin import RuleSetError, load_ruleset
from plugin.lexicon import EXAMPLES_FILE, LEXICON_FILE, parse_lexicon
from plugin.rulecheck import check_entry, check_examples
from plugin.ruleset import packaged_dir

RULESET = load_ruleset()
RULES = RULESET.lexicon.rules


def _raw(name: str) -> dict:
    return yaml.safe_load((packaged_dir() / name).read_text(encoding="utf-8"))


def test_every_entry_has_an_id_and_a_defined_source() -> None:
    assert len(RULES) >= 150  # the packaged lexicon, not an empty file
    sources = RULESET.lexicon.sources
    for rule in RULES:
        assert rule.id and rule.sources, rule
        assert all(s in sources for s in rule.sources), rule.id


@pytest.mark.parametrize("rule", RULES, ids=[r.id for r in RULES])
def test_entry_examples_hold_on_the_entry_alone(rule) -> None:
    assert check_entry(rule) == []


def test_an_entry_without_examples_fails_the_check() -> None:
    examples = _raw(EXAMPLES_FILE)
    victim = "ta.lift"
    del examples[victim]
    lex = parse_lexicon(_raw(LEXICON_FILE), examples=examples)
    kinds = {(f.rule_id, f.kind) for f in check_examples(lex)}
    assert {(victim, "missing-fires"), (victim, "missing-quiet")} <= kinds


def test_an_entry_with_only_one_list_fails_the_check() -> None:
    examples = _raw(EXAMPLES_FILE)
    examples["skill.cues"] = {"fires": examples["skill.cues"]["fires"]}
    lex = parse_lexicon(_raw(LEXICON_FILE), examples=examples)
    assert [f.kind for f in check_examples(lex)] == ["missing-quiet"]


def test_a_wrong_example_fails_the_check() -> None:
    examples = copy.deepcopy(_raw(EXAMPLES_FILE))
    examples["ta.carry"]["fires"].append("Walked to the car")  # ta.carry does not match it
    examples["ta.carry"]["quiet"].append("Carried the box")  # ...and matches this near miss
    lex = parse_lexicon(_raw(LEXICON_FILE), examples=examples)
    failures = check_examples(lex)
    assert {(f.rule_id, f.kind, f.text) for f in failures} == {
        ("ta.carry", "fires", "Walked to the car"), ("ta.carry", "quiet", "Carried the box"),
    }


def test_examples_for_an_unknown_entry_are_refused_at_load() -> None:
    examples = _raw(EXAMPLES_FILE)
    examples["ta.teleport"] = {"fires": ["x"], "quiet": ["y"]}
    with pytest.raises(RuleSetError, match=r"lexicon.examples.yaml:ta.teleport: \[ta.teleport\] examples for an entry that does not exist"):
        parse_lexicon(_raw(LEXICON_FILE), examples=examples)


def test_an_undefined_source_is_refused_naming_file_entry_and_problem() -> None:
    raw = _raw(LEXICON_FILE)
    raw["activities"]["97530"]["patterns"][2]["source"] = "ref-9.9"
    with pytest.raises(RuleSetError) as info:
        parse_lexicon(raw)
    message = str(info.value)
    assert message.startswith("lexicon.yaml:activities.97530.patterns[2]: [ta.sit-to-stand]")
    assert "'ref-9.9' is not defined under `sources`" in message


def test_a_duplicate_id_is_refused() -> None:
    raw = _raw(LEXICON_FILE)
    raw["activities"]["97110"]["patterns"][0]["id"] = "ta.transfer"
    duplicate = r"activities.97110.patterns\[0\]: \[ta.transfer\] duplicate id \(also at activities.97530.patterns\[0\]\)"
    with pytest.raises(RuleSetError, match=duplicate):
        parse_lexicon(raw)


def test_a_not_phrase_vetoes_a_match_where_it_starts() -> None:
    raw = _raw(LEXICON_FILE)
    carry_entry = next(e for e in raw["activities"]["97530"]["patterns"] if e["id"] == "ta.carry")
    carry_entry["not"] = [r"carr(?:y|ies|ied|ying)\s+over"]
    lex = parse_lexicon(raw)
    carry = lex.rule("ta.carry")
    assert carry.regex.search("carried the crate x3")
    assert not carry.regex.search("carried over from last visit")


def test_criteria_cite_defined_sources() -> None:
    for name, wording in RULESET.criteria.wording.items():
        assert all(key in RULESET.lexicon.sources for key in wording.cites), name
