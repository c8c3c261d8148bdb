#!/usr/bin/env python3
"""In-process scorer for the labelled case files, with the detail a rule author needs.

    .venv/bin/python tools/dev_report.py ../shared/cases/dev2.jsonl [--only ID ...] [--detail]

Builds each case's Bundle exactly as ``../shared/tools/score_cases.py`` does (imported from
there), evaluates it in this process and prints one line per miss (verdict, recode target,
units, missing criteria) and the same closing line as the official scorer. ``--detail``
prints the evidence of every criterion for the cases shown. Faster than the CLI round trip,
so it is the loop to use while changing rules; the official scorer stays the measure.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from plugin import evaluate_resources  # noqa: E402 - importable once sys.path has the repo


def _score_module():
    path = ROOT.parent / "shared" / "tools" / "score_cases.py"
    spec = importlib.util.spec_from_file_location("score_cases", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("cases", type=Path, nargs="+")
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--detail", action="store_true")
    ap.add_argument("--all", action="store_true", help="show every case, not only misses")
    args = ap.parse_args()
    sc = _score_module()
    for path in args.cases:
        cases = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        v_ok = r_ok = r_n = u_ok = 0
        for case in cases:
            if args.only and case["id"] not in args.only:
                continue
            want = case["expected"]["97530"]
            ev = evaluate_resources(sc.bundle_for(case), payer=case["payer"])
            got = next(ln for ln in ev.lines if ln.code == "97530")
            verdict = got.verdict.value
            missing = sorted(f.criterion for f in got.findings if f.status.value == "missing") if verdict == "needs-documentation" else []
            ok_v = verdict == want["verdict"]
            ok_r = want["verdict"] != "recode" or got.suggested_code == want["recode_to"]
            ok_u = got.supported_units == want["supported_units"]
            v_ok += ok_v
            u_ok += ok_u
            if want["verdict"] == "recode":
                r_n += 1
                r_ok += ok_v and got.suggested_code == want["recode_to"]
            ok_m = sorted(want.get("missing") or []) == missing
            if args.all or args.only or not (ok_v and ok_r and ok_u and ok_m):
                flag = "" if ok_v and ok_r else "VERDICT "
                flag += "" if ok_u else "UNITS "
                flag += "" if ok_m else "MISSING "
                print(f"{case['id']}: {flag}want {want['verdict']} {want.get('recode_to') or ''} "
                      f"u={want['supported_units']} m={want.get('missing')}"
                      f" | got {verdict} {got.suggested_code or ''} u={got.supported_units} m={missing}")
                if args.detail:
                    print("   NOTE:", case["note"].replace("\n", " ⏎ ")[:1500])
                    print("   LINES:", case["lines"], "|", case.get("rationale", ""))
                    for f in got.findings:
                        print(f"   {f.criterion}: {f.status.value} {[e.text for e in f.evidence]}")
                    if got.documented:
                        quoted = [e.text for e in got.documented.evidence][:4]
                        print(f"   documented: {got.documented.code} {got.documented.scores} {quoted}")
                    print(f"   units: {got.units}")
        n = len([c for c in cases if not args.only or c["id"] in args.only])
        print(f"{path.name}: verdict {v_ok}/{n} ({100 * v_ok // max(n, 1)}%) · recode target {r_ok}/{r_n} · units {u_ok}/{n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
