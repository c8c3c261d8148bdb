"""The ruleset is one immutable value per directory: loaded, validated, injected, swapped.

A billing lead copies plugin/data, edits it, and the engine, ``check --rules`` and ``rules
test`` use the copy without touching the installed package; a broken copy is refused at load
with the file, the entry and the problem.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import plugin
from plugin import Ruleset, RuleSetError, evaluate_note, evaluate_resources, load_ruleset
from plugin.billing import UnknownPayerError
from plugin.ruleset import packaged_dir

# Complete except that "schlepping" is no word of the packaged lexicon: no dynamic activity.
SCHLEP_NOTE = (
    "Ther act 25 min: schlepping 20 lb boxes 40 ft x6 with VC for upright posture and CGA.\n"
    "LTG: return to work as a mover.\n"
)


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(packaged_dir(), target, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    return target


def _add_synonym(directory: Path) -> None:
    """What a billing lead does: add a word to ta.carry (and an example for it)."""
    lex = directory / "lexicon.yaml"
    text = lex.read_text(encoding="utf-8")
    old = "{id: ta.carry, p: 'carr(?:y|ies|ied|ying)|"
    assert old in text
    lex.write_text(text.replace(old, "{id: ta.carry, p: 'schlep(?:s|ped|ping)?|carr(?:y|ies|ied|ying)|"), encoding="utf-8")
    ex = directory / "lexicon.examples.yaml"
    text = ex.read_text(encoding="utf-8")
    old = 'ta.carry:\n  fires: ['
    assert old in text
    ex.write_text(text.replace(old, 'ta.carry:\n  fires: ["Schlepping boxes 40 ft x6", '), encoding="utf-8")


def test_default_ruleset_is_one_cached_immutable_value() -> None:
    rs = load_ruleset()
    assert isinstance(rs, Ruleset) and rs is load_ruleset() and rs is load_ruleset(packaged_dir())
    assert rs.is_packaged and rs.version.startswith("lexicon ")
    with pytest.raises(dataclasses.FrozenInstanceError):
        rs.lexicon = None  # type: ignore[misc]
    with pytest.raises(TypeError):
        rs.payers["x"] = rs.payers["medicare"]  # type: ignore[index]
    assert {"medicare", "medicaid", "commercial", "wsi"} <= set(rs.payers)


def test_a_copied_ruleset_with_a_new_synonym_changes_the_verdict(tmp_path) -> None:
    packaged = evaluate_note(SCHLEP_NOTE, units=2).lines[0]
    assert packaged.verdict.value == "needs-documentation"
    assert "dynamic-activity" in {f.criterion for f in packaged.findings if f.status.value == "missing"}
    directory = _copy(tmp_path)
    _add_synonym(directory)
    edited = load_ruleset(directory)
    assert edited is not load_ruleset() and edited is load_ruleset(directory)
    line = evaluate_note(SCHLEP_NOTE, units=2, ruleset=edited).lines[0]
    assert line.verdict.value == "supported", [(f.criterion, f.status.value) for f in line.findings]
    # the packaged ruleset is untouched in the same process
    assert evaluate_note(SCHLEP_NOTE, units=2).lines[0].verdict.value == "needs-documentation"


def test_a_new_payer_is_a_new_file_in_the_copy(tmp_path) -> None:
    directory = _copy(tmp_path)
    text = (directory / "payers" / "commercial.yaml").read_text(encoding="utf-8")
    text = text.replace("id: commercial", "id: acme").replace("label: ", "label: Acme Health ", 1)
    (directory / "payers" / "acme.yaml").write_text(text + "\n", encoding="utf-8")
    rs = load_ruleset(directory)
    assert rs.payer("acme").id == "acme"
    assert evaluate_note(SCHLEP_NOTE, payer="acme", ruleset=rs).payer == "acme"
    with pytest.raises(UnknownPayerError):
        evaluate_note(SCHLEP_NOTE, payer="acme")  # not in the packaged ruleset


def test_evaluate_resources_takes_the_ruleset(tmp_path, make_bundle) -> None:
    directory = _copy(tmp_path)
    _add_synonym(directory)
    bundle = make_bundle(SCHLEP_NOTE)
    assert evaluate_resources(bundle).lines[0].verdict.value == "needs-documentation"
    assert evaluate_resources(bundle, ruleset=load_ruleset(directory)).lines[0].verdict.value == "supported"


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda d: (d / "lexicon.yaml").write_text("version: [", encoding="utf-8"), r"lexicon.yaml: not valid YAML"),
    (lambda d: (d / "criteria.yaml").unlink(), r"criteria.yaml: file missing from the ruleset directory"),
    (lambda d: shutil.rmtree(d / "payers"), r"payers: the ruleset has no payers/ directory"),
    (lambda d: (d / "lexicon.yaml").write_text(
        (d / "lexicon.yaml").read_text(encoding="utf-8").replace("{id: ta.lift, p: '", "{id: ta.lift, p: '("),
        encoding="utf-8"), r"lexicon.yaml:activities.97530.patterns\[7\]: \[ta.lift\] invalid regex"),
    (lambda d: (d / "criteria.yaml").write_text(
        (d / "criteria.yaml").read_text(encoding="utf-8").replace("cites: [ref-1.4]", "cites: [ref-9]"),
        encoding="utf-8"), r"criteria.yaml:criteria.time-documented.cites: \[time-documented\] source 'ref-9' is not defined"),
])
def test_a_broken_copy_is_refused_naming_file_entry_and_problem(tmp_path, edit, expected) -> None:
    directory = _copy(tmp_path)
    edit(directory)
    with pytest.raises(RuleSetError, match=expected):
        load_ruleset(directory)


def test_not_a_directory_is_refused(tmp_path) -> None:
    with pytest.raises(RuleSetError, match="not a directory"):
        load_ruleset(tmp_path / "nope")


def test_evidence_names_the_rules_in_explain() -> None:
    from plugin.explain import explain_note

    ex = explain_note("Ther act 25 min: STS x10 with VC. LTG: return to work.")
    fired = {h.rule_id for h in ex.hits}
    assert {"ta.sit-to-stand", "skill.cues", "resp.reps-sets", "goal.return-to"} <= fired
    dynamic = next(d for d in ex.criteria if d.criterion == "dynamic-activity")
    assert dynamic.status == "met" and "ta.sit-to-stand" in dynamic.rules[0]


# --- the command line ---------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cds97530", *args], capture_output=True, text=True, timeout=120)


def test_check_with_rules_dir_changes_the_verdict(tmp_path) -> None:
    note = tmp_path / "note.txt"
    note.write_text(SCHLEP_NOTE)
    directory = _copy(tmp_path)
    _add_synonym(directory)
    before = _cli("check", "--format", "json", "--units", "2", str(note))
    after = _cli("check", "--format", "json", "--units", "2", "--rules", str(directory), str(note))
    assert before.returncode == 1 and after.returncode in (0, 1), after.stderr
    assert json.loads(before.stdout)["lines"][0]["verdict"] == "needs-documentation"
    out = json.loads(after.stdout)
    assert out["lines"][0]["verdict"] == "supported"
    evidence = [ev for f in out["lines"][0]["findings"] for ev in f["evidence"]]
    assert evidence and all("rules" in ev for ev in evidence)  # the JSON carries the rule ids field


def test_check_with_a_broken_rules_dir_exits_2(tmp_path) -> None:
    directory = _copy(tmp_path)
    (directory / "lexicon.yaml").write_text("version: [", encoding="utf-8")
    note = tmp_path / "note.txt"
    note.write_text(SCHLEP_NOTE)
    out = _cli("check", "--rules", str(directory), str(note))
    assert out.returncode == 2 and "lexicon.yaml" in out.stderr and "Traceback" not in out.stderr


def test_rules_test_passes_on_the_packaged_ruleset_and_fails_on_a_bad_example(tmp_path) -> None:
    ok = _cli("rules", "test")
    assert ok.returncode == 0, ok.stdout[-2000:]
    assert "all pass" in ok.stdout
    directory = _copy(tmp_path)
    ex = directory / "lexicon.examples.yaml"
    ex.write_text(ex.read_text(encoding="utf-8").replace('ta.carry:\n  fires: [', 'ta.carry:\n  fires: ["Walked to the car", '),
                  encoding="utf-8")
    bad = _cli("rules", "test", str(directory))
    assert bad.returncode == 1
    assert "FAIL ta.carry: fires 'Walked to the car'" in bad.stdout


def test_rules_test_fails_when_an_entry_has_no_examples(tmp_path) -> None:
    directory = _copy(tmp_path)
    ex = directory / "lexicon.examples.yaml"
    text = ex.read_text(encoding="utf-8")
    start = text.index("ta.carry:\n")
    end = text.index("\nta.reach:")
    ex.write_text(text[:start] + text[end + 1:], encoding="utf-8")
    out = _cli("rules", "test", str(directory))
    assert out.returncode == 1 and "ta.carry: missing-fires" in out.stdout


def test_rules_explain_prints_rules_and_decisions(tmp_path) -> None:
    note = tmp_path / "note.txt"
    note.write_text("Ther act 25 min: quad sets 3x10, SLR 3x10, bridges 2x10 with cues. LTG: stairs at home.\n")
    out = _cli("rules", "explain", str(note))
    assert out.returncode == 0, out.stderr
    assert "tx.le-exercises" in out.stdout and "verdict: recode -> 97110" in out.stdout
    assert "documented code:" in out.stdout and "97110 describes more clauses" in out.stdout


def test_public_api_exports_the_ruleset_and_code_systems() -> None:
    for name in ("Ruleset", "load_ruleset", "CPT_SYSTEM", "CPT_SYSTEMS", "HCPCS_SYSTEMS", "is_procedure_code"):
        assert name in plugin.__all__


def test_rules_test_redos_fails_on_an_exponential_pattern(tmp_path) -> None:
    directory = _copy(tmp_path)
    lex = directory / "lexicon.yaml"
    lex.write_text(lex.read_text(encoding="utf-8").replace("{id: ta.carry, p: '", "{id: ta.carry, p: '(?:\\w+\\s?)+shelf|"),
                   encoding="utf-8")
    out = _cli("rules", "test", "--redos", str(directory))
    assert out.returncode == 1
    assert "FAIL ta.carry: redos" in out.stdout
