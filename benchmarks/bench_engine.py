"""Benchmark the 97530 evaluation engine (issue 2's numbers, issue 11's speed bar).

Prints, in one process per measurement:
  - notes/second and p50/p99 per-note time for the text engine (evaluate_note) and for the whole
    FHIR path (evaluate_resources on the scorer's bundles), **each note evaluated once**: every
    labelled note we have (../shared/cases/dev*.jsonl and tests/heldout*/*.jsonl), after a warm-up on
    the 105 real notes of ../shared/corpora (as a server warms on traffic). A note seen before is
    cheaper (RE2 and ``re`` keep automata and caches), so repeating the same notes flatters the
    figure; that is shown apart, as "repeated notes";
  - next to a baseline measured in the same process: JSON-parse the bundle and decode the note (the
    least any evaluator must do), so the ratio survives a faster or busier machine;
  - the time for a 1 MB note;
  - the CLI's cold start on one bundle (median of 5 runs) next to `python -c pass`.

    .venv/bin/python benchmarks/bench_engine.py [--rounds 3]

``--rounds`` repeats each measurement in a fresh process and reports the best (the least disturbed
by other work on the machine); each round still sees every note once.
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


def _timed(fn, items) -> list[float]:
    per_item: list[float] = []
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


def _labelled_cases() -> list[dict]:
    files = sorted((SHARED / "cases").glob("dev*.jsonl")) + sorted((ROOT / "tests").glob("heldout*/*.jsonl"))
    return [json.loads(line) for f in files for line in f.read_text().splitlines() if line.strip()]


def _measure(kind: str) -> dict[str, list[float]]:
    """One measurement in this (fresh) process: the baseline, then ``kind`` on every note once."""
    from score_cases import bundle_for  # the scorer's own bundle builder

    from plugin import evaluate_note, evaluate_resources

    cases = _labelled_cases()
    bundles = [(json.dumps(bundle_for(c)), c["payer"]) for c in cases]
    notes = [(c["note"], c["payer"]) for c in cases]
    corpus = SHARED / "corpora" / "mtsamples-therapy.jsonl"
    warm = [json.loads(line).get("text") or "" for line in corpus.read_text().splitlines() if line.strip()]
    evaluate_note("warm up", units=1)  # load and compile the rule data once, as a server would
    for text in warm:  # then serve some traffic that is not the notes measured
        evaluate_note(text, units=2)

    def baseline(item: tuple[str, str]) -> None:
        bundle = json.loads(item[0])
        for entry in bundle["entry"]:
            res = entry["resource"]
            if res["resourceType"] == "DocumentReference":
                base64.b64decode(res["content"][0]["attachment"]["data"]).decode()

    out = {"baseline": _timed(baseline, bundles)}
    if kind == "text":
        out["text"] = _timed(lambda it: evaluate_note(it[0], units=2, payer=it[1]), notes)
        out["repeated"] = _timed(lambda it: evaluate_note(it[0], units=2, payer=it[1]), notes)
    else:
        out["fhir"] = _timed(lambda it: evaluate_resources(json.loads(it[0]), payer=it[1]), bundles)
    return out


def _in_child(kind: str) -> dict[str, list[float]]:
    run = subprocess.run([sys.executable, __file__, "--child", kind], capture_output=True, text=True, check=True)
    return json.loads(run.stdout)


def _rate(times: list[float]) -> float:
    return len(times) / sum(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", choices=("text", "fhir"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_measure(args.child)))
        return 0

    best: dict[str, list[float]] = {}
    base_of: dict[str, list[float]] = {}
    for _ in range(max(1, args.rounds)):
        for kind in ("text", "fhir"):
            got = _in_child(kind)
            for name, times in got.items():
                if name != "baseline" and (name not in best or _rate(times) > _rate(best[name])):
                    best[name], base_of[name] = times, got["baseline"]
    n = len(best["text"])
    print(f"{n} labelled notes, each evaluated once per process (best of {args.rounds} processes), Python {sys.version.split()[0]}")
    _report("baseline (parse bundle, decode note)", base_of["text"])
    _report("evaluate_note (text engine)", best["text"], base_of["text"])
    _report("evaluate_resources (FHIR path)", best["fhir"], base_of["fhir"])
    _report("repeated notes (text; flattered)", best["repeated"], base_of["repeated"])

    from plugin import evaluate_note

    evaluate_note("warm up", units=1)
    big = ("Ther act 24 min: pt lifted a 10 lb box x10 with vc for hip hinge. Goal: return to work. " * 12000)[:1_000_000]
    t0 = time.perf_counter()
    evaluate_note(big, units=2)
    print(f"{'1 MB note':<34} {1000 * (time.perf_counter() - t0):9.1f} ms")

    cli = shutil.which("cds97530", path=str(Path(sys.executable).parent))
    if cli:
        from score_cases import bundle_for

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "one.json"
            path.write_text(json.dumps(bundle_for(_labelled_cases()[0])))
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
