"""Cue-position matching gives what a full scan gives: the total-treatment pattern is tried only
where its cue words start (plugin/layout.py:_matches_at), which must find exactly the matches
``finditer`` finds on every note we have."""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from plugin.layout import _TOTAL_TREATMENT, _TOTAL_TREATMENT_CUE, _matches_at
from plugin.lexicon import lowered

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"


def _texts() -> list[str]:
    texts = [c["note"] for c in yaml.safe_load((ROOT / "tests" / "plugin" / "cases_97530.yaml").read_text())["cases"]]
    for path in [*sorted((SHARED / "cases").glob("dev*.jsonl")), *sorted((ROOT / "tests").glob("heldout*/*.jsonl"))]:
        texts += [json.loads(line)["note"] for line in path.read_text().splitlines() if line.strip()]
    texts += ["Total 30", "subtotal 30 min", "Time 25 min.\nTotal treatment time: 40", "TOTAL TX TIME 45 MIN",
              "session 30 min; visit time 40 min", "x" * 500 + "time 20 min\n"]
    return texts


def test_matches_at_cues_equal_a_full_scan() -> None:
    checked = 0
    for text in _texts():
        full = [m.span() for m in _TOTAL_TREATMENT.finditer(text)]
        at_cues = [m.span() for m in _matches_at(_TOTAL_TREATMENT, text, [c.start() for c in _TOTAL_TREATMENT_CUE.finditer(lowered(text))])]
        assert at_cues == full, text[:120]
        checked += bool(full)
    assert checked > 30  # the pattern does match on many notes (41 of them on 2026-12-01)
