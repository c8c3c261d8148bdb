"""``preload`` leaves nothing for a fresh process's first evaluation to load: a claim visit with a PDF
or an RTF note, evaluated after it, imports no module (the R4 schemas and the attachment readers are
compiled and imported up front, so a fresh service worker's first call is as fast as its later ones)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json, sys
from sandbox.synthetic import build_dataset, visit_resources  # the demo's visits, as FHIR resources
import plugin
from plugin.fhir_schema import validator  # the compiled R4 schema of each validated type

def bundle(visit):
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in visit_resources(ds, visit)]}

ds = build_dataset("preload-test")
visits = {ct: next(v for v in ds.visits(content_type=ct)) for ct in ("application/pdf", "text/rtf")}
preload = sys.argv[1] == "preload"
if preload:
    from plugin.preload import preload as run
    run()
else:  # what the old warm-up evaluated: one order with a plain-text note
    plugin.evaluate_resources({"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "ServiceRequest", "id": "w", "status": "draft", "intent": "order",
                      "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "97530"}]},
                      "subject": {"reference": "Patient/w"}}}]}, lines_from="ServiceRequest")
models_before = validator.cache_info().currsize
before = set(sys.modules)
for visit in visits.values():
    plugin.evaluate_resources(bundle(visit), lines_from="Claim")
print(json.dumps({"new_modules": sorted(set(sys.modules) - before),
                  "new_models": validator.cache_info().currsize - models_before}))
"""


def _first_call(mode: str) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_after_preload_the_first_claim_evaluation_loads_nothing() -> None:
    assert _first_call("preload") == {"new_modules": [], "new_models": 0}


def test_without_preload_the_first_claim_evaluation_loads_models_and_readers() -> None:
    # the near miss: the same first call after only the old warm-up builds models and imports the readers
    result = _first_call("order-only")
    assert result["new_models"] > 0
    new = result["new_modules"]
    assert isinstance(new, list)
    assert any(m.startswith("pypdf") for m in new) and any(m.startswith("striprtf") for m in new)
