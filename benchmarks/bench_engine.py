"""Benchmark the 97530 evaluation engine (issue 2's numbers).

Prints, for the labelled dev cases (../shared/cases/dev.jsonl):
  - notes/second and p50/p99 per-note time for the text engine (evaluate_note) and for the whole
    FHIR path (evaluate_resources on the scorer's bundles), in one process;
  - next to a baseline measured in the same run: JSON-parse the bundle and decode the note (the
    least any evaluator must do), so the ratio survives a faster or busier machine;
  - the time for a 1 MB note;
  - the CLI's cold start on one bundle (median of 5 runs) next to `python -c pass`.

    .venv/bin/python benchmarks/bench_engine.py [--rounds 5]
"""
from __future__ import annotations

import argparse
import base64
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(SHARED / "tools"))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _timed(fn, items, rounds: int) -> list[float]:
    per_item: list[float] = []
    for _ in range(rounds):
        for item in items:
            t0 = time.perf_counter()
            fn(item)
            per_item.append(time.perf_counter() - t0)
    return per_item


def _report(name: str, times: list[float], baseline: list[float] | None = None) -> None:
    rate = len(times) / sum(times)
    line = (f"{name:<34} {rate:9.1f} notes/s   p50 {1000 * statistics.median(times):7.2f} ms"
            f"   p99 {1000 * _percentile(times, 0.99):7.2f} ms")
    if baseline:
        line += f"   ratio to baseline p50 {statistics.median(times) / statistics.median(baseline):6.1f}x"
    print(line)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    from score_cases import bundle_for  # the scorer's own bundle builder

    from plugin import evaluate_note, evaluate_resources

    cases = [json.loads(line) for line in (SHARED / "cases" / "dev.jsonl").read_text().splitlines() if line.strip()]
    bundles = [(json.dumps(bundle_for(c)), c["payer"]) for c in cases]
    notes = [(c["note"], c["payer"]) for c in cases]
    evaluate_note("warm up", units=1)  # load and compile the rule data once, as a server would

    def baseline(item: tuple[str, str]) -> None:
        bundle = json.loads(item[0])
        for entry in bundle["entry"]:
            res = entry["resource"]
            if res["resourceType"] == "DocumentReference":
                base64.b64decode(res["content"][0]["attachment"]["data"]).decode()

    base = _timed(baseline, bundles, args.rounds)
    print(f"dev cases: {len(cases)} notes x {args.rounds} rounds, Python {sys.version.split()[0]}")
    _report("baseline (parse bundle, decode note)", base)
    _report("evaluate_note (text engine)", _timed(lambda it: evaluate_note(it[0], units=2, payer=it[1]), notes, args.rounds), base)
    _report("evaluate_resources (FHIR path)",
            _timed(lambda it: evaluate_resources(json.loads(it[0]), payer=it[1]), bundles, args.rounds), base)

    big = ("Ther act 24 min: pt lifted a 10 lb box x10 with vc for hip hinge. Goal: return to work. " * 12000)[:1_000_000]
    t0 = time.perf_counter()
    evaluate_note(big, units=2)
    print(f"{'1 MB note':<34} {1000 * (time.perf_counter() - t0):9.1f} ms")

    cli = shutil.which("cds97530", path=str(Path(sys.executable).parent))
    if cli:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "one.json"
            path.write_text(bundles[0][0])
            runs, bare = [], []
            for _ in range(5):
                t0 = time.perf_counter()
                subprocess.run([cli, "check", "--format", "json", str(path)], capture_output=True, check=False)
                runs.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                subprocess.run([sys.executable, "-c", "pass"], capture_output=True, check=False)
                bare.append(time.perf_counter() - t0)
        print(f"{'CLI cold start, one bundle':<34} {1000 * statistics.median(runs):9.1f} ms (median of 5)"
              f"   python -c pass {1000 * statistics.median(bare):.1f} ms   ratio {statistics.median(runs) / statistics.median(bare):.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
