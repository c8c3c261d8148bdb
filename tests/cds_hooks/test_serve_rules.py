"""`serve --rules DIR`: the service evaluates with that ruleset, and a bad one stops it at start-up."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from cds_hooks.evaluation_pool import evaluate_in_process
from cds_hooks.settings import CdsSettings
from plugin.ruleset import packaged_dir

NOTE = "Ther act 25 min: schlepping 20 lb boxes 40 ft x6 with VC for upright posture and CGA.\nLTG: return to work as a mover.\n"


def _bundle(note: str) -> dict:
    import base64
    return {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Procedure", "id": "p1", "status": "completed", "subject": {"reference": "Patient/x"},
                      "encounter": {"reference": "Encounter/e1"},
                      "code": {"coding": [{"system": "https://www.ama-assn.org/go/cpt", "code": "97530"}]}}},
        {"resource": {"resourceType": "DocumentReference", "id": "d1", "status": "current", "subject": {"reference": "Patient/x"},
                      "context": {"encounter": [{"reference": "Encounter/e1"}]},
                      "content": [{"attachment": {"contentType": "text/plain", "data": base64.b64encode(note.encode()).decode()}}]}},
    ]}


def _copy_with_synonym(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(packaged_dir(), target, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    lex = target / "lexicon.yaml"
    lex.write_text(lex.read_text(encoding="utf-8").replace("{id: ta.carry, p: '", "{id: ta.carry, p: 'schlep(?:s|ped|ping)?|"),
                   encoding="utf-8")
    return target


def test_the_service_evaluation_uses_the_configured_ruleset(tmp_path) -> None:
    rules = _copy_with_synonym(tmp_path)
    settings = CdsSettings(rules_dir=rules)
    assert evaluate_in_process(_bundle(NOTE)).lines[0].verdict.value == "needs-documentation"
    line = evaluate_in_process(_bundle(NOTE), rules_dir=settings.rules_dir).lines[0]
    assert line.verdict.value == "supported"


def test_rules_dir_comes_from_the_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("CDS97530_RULES_DIR", str(tmp_path))
    assert CdsSettings().rules_dir == tmp_path  # how --workers N passes it to each worker


def test_serve_with_a_bad_ruleset_stops_at_start_up_naming_the_file(tmp_path) -> None:
    rules = _copy_with_synonym(tmp_path)
    (rules / "criteria.yaml").write_text("version: [", encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "cds97530", "serve", "--rules", str(rules), "--port", "1"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "criteria.yaml" in out.stderr and "not valid YAML" in out.stderr and "Traceback" not in out.stderr
