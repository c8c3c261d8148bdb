"""Every lexicon entry matters: removing it changes how the engine reads one of its own examples.

Through the engine (``plugin.rulecheck.reading_outcome``: layout, clauses, reading), not the
entry's regex alone: an entry whose ``fires`` texts are all read the same way without it is
shadowed by another entry (or by a scope rule) and fails here. The dev-case half checks that the
same removal harness (``tools/rule_ablation_report.py``) sees real notes depend on core entries;
it needs ``../shared`` and fails in CI when that is missing.
"""
from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import pytest
from required_parts import need_shared

from plugin import load_ruleset
from plugin.rulecheck import ablation_failures, reading_outcome, without

RULESET = load_ruleset()
RULES = RULESET.lexicon.rules
SHARED = Path(__file__).resolve().parents[3] / "shared"
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("rule", RULES, ids=[r.id for r in RULES])
def test_removing_the_entry_changes_one_of_its_own_examples(rule) -> None:
    assert ablation_failures(RULESET.lexicon, [rule]) == []


def test_ablation_catches_a_shadowed_entry() -> None:
    """A copy of an entry (same pattern, new id) changes nothing when removed: the harness says so."""
    lex = RULESET.lexicon
    cat = lex.activities["97530"]
    original = next(p for p in cat.patterns if p.id == "ta.carry")
    twin = dataclasses.replace(original, id="ta.carry-twin")
    twin_rule = dataclasses.replace(lex.rule("ta.carry"), id="ta.carry-twin")
    shadowed = dataclasses.replace(
        lex, activities={**lex.activities, "97530": dataclasses.replace(cat, patterns=(*cat.patterns, twin))},
        rules=(*lex.rules, twin_rule),
    )
    assert [f.rule_id for f in ablation_failures(shadowed, [twin_rule])] == ["ta.carry-twin"]


def test_without_removes_exactly_one_entry() -> None:
    lex = RULESET.lexicon
    reduced = without(lex, "ctx.negation.no")
    assert len(reduced.rules) == len(lex.rules) - 1
    text = "No transfers today"
    assert reading_outcome(text, lex) != reading_outcome(text, reduced)


def _shared_or_fail() -> Path:
    need_shared("cases/dev.jsonl")
    return SHARED


def test_dev_notes_depend_on_core_entries() -> None:
    shared = _shared_or_fail()
    spec = importlib.util.spec_from_file_location("rule_ablation_report", ROOT / "tools" / "rule_ablation_report.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    dev = tool.dev_inputs([shared / "cases" / "dev.jsonl"])
    assert len(dev) >= 20
    base = tool.outcomes(RULESET, dev, [])
    for rule_id in ("skill.cues", "resp.reps-sets", "goal.named-goal", "goal.goal-phrase"):
        reduced = dataclasses.replace(RULESET, lexicon=without(RULESET.lexicon, rule_id))
        changed = [cid for cid, outcome in tool.outcomes(reduced, dev, []).items() if outcome != base[cid]]
        assert changed, f"no dev note depends on {rule_id}: the ablation harness is not seeing the engine"
