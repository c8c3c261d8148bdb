#!/usr/bin/env python3
"""Format invariance: each labelled case re-rendered in other formats must keep its answers.

    .venv/bin/python tools/invariance_report.py [--show-misses] ../shared/cases/dev.jsonl ../shared/cases/dev2.jsonl

For every case and every rendering in ``tests/plugin/renderings.py`` that applies to it, the
re-rendered note is evaluated in-process and its verdict, recode target and supported units are
compared with the case's labels. Prints the rate per rendering and overall; the same measure is a
test (``tests/plugin/test_format_invariance.py``) and is recorded in docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "plugin"))

from renderings import RENDERINGS  # noqa: E402 - importable once sys.path has the repo

from plugin import evaluate_resources  # noqa: E402 - importable once sys.path has the repo

SCORER = ROOT.parent / "shared" / "tools" / "score_cases.py"


def _bundle_for():
    spec = importlib.util.spec_from_file_location("score_cases", SCORER)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module.bundle_for


def answers(case: dict, note: str, bundle_for) -> tuple[str, str | None, int]:
    ev = evaluate_resources(bundle_for({**case, "note": note}), payer=case["payer"])
    line = next(ln for ln in ev.lines if ln.code == "97530")
    return line.verdict.value, line.suggested_code, line.supported_units


def expected(case: dict) -> tuple[str, str | None, int]:
    want = case["expected"]["97530"]
    return want["verdict"], want.get("recode_to"), want["supported_units"]


def measure(cases: Iterable[dict]) -> dict[str, list[tuple[str, tuple, tuple]]]:
    """rendering -> [(case id, expected, got)] for every case the rendering applies to."""
    bundle_for = _bundle_for()
    out: dict[str, list[tuple[str, tuple, tuple]]] = {name: [] for name in RENDERINGS}
    for case in cases:
        want = expected(case)
        for name, render in RENDERINGS.items():
            note = render(case["note"])
            if note is None or note == case["note"]:
                continue
            out[name].append((case["id"], want, answers(case, note, bundle_for)))
    return out


def load(paths: Iterable[Path]) -> list[dict]:
    return [json.loads(line) for path in paths for line in path.read_text().splitlines() if line.strip()]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("cases", type=Path, nargs="+")
    ap.add_argument("--show-misses", action="store_true")
    args = ap.parse_args()
    results = measure(load(args.cases))
    kept = total = 0
    for name, rows in results.items():
        ok = sum(w == g for _, w, g in rows)
        kept += ok
        total += len(rows)
        print(f"{name:26s} {ok:4d}/{len(rows):<4d} {100 * ok / max(len(rows), 1):5.1f}%")
        if args.show_misses:
            for cid, w, g in rows:
                if w != g:
                    print(f"    {cid}: want {w} got {g}")
    print(f"{'all renderings':26s} {kept:4d}/{total:<4d} {100 * kept / max(total, 1):5.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
