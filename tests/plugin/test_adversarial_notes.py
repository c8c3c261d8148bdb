"""Bad input gets an answer in bounded time: 60,000-character adversarial notes, and no lexicon
pattern that backtracks super-linearly.

The notes are the shapes an attack or a broken export produces (runs of clock times before a
heading, a heading followed by a thousand form feeds, every Unicode whitespace kind in runs,
one heading repeated, one very long token, long runs of em spaces). Each is evaluated
in-process within 0.2 s of CPU (best of 3 after a warm-up), and ``cds97530 check`` answers on it
in under 2 s including interpreter start-up. These are bars, not benchmarks: the engine's
throughput is measured in ``benchmarks/bench_engine.py``.

Every lexicon pattern is also checked with regexploit (a ReDoS analyser for backtracking
engines): a billing lead's new pattern with nested or adjacent overlapping repeats fails here.
"""
from __future__ import annotations

import resource
import subprocess
import sys

import pytest

from plugin import load_ruleset
from plugin.rulecheck import redos_failures, redos_findings

N = 60_000
UNICODE_WHITESPACE = (
    "\t\n\x0b\x0c\r \x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000\u180e\u200b\ufeff"
)


def _fill(unit: str, tail: str = "") -> str:
    body = (unit * (N // len(unit) + 1))[: N - len(tail)]
    return body + tail


NOTES = {
    "clock-times-before-heading": _fill("0800-0900 ", "\nTher act 25 min: lifted crates x10 with CGA"),
    "treatment-time-form-feeds": _fill("Treatment time" + "\x0c" * 1000),
    "unicode-whitespace-runs": _fill("Ther act" + UNICODE_WHITESPACE * 8 + "25 min" + UNICODE_WHITESPACE * 16),
    "repeated-headings": _fill("Therapeutic activities 25 min: STS x10 with VC.\n"),
    "one-very-long-token": "Ther act 25 min: " + "a" * (N - 17),
    "em-space-runs": _fill("TA" + "\u2003" * 3000 + "25 min:"),
    "digit-runs": _fill("1" * 5000 + " min "),
    "repeated-minutes": _fill("25 min "),
}
BUDGET_IN_PROCESS = 0.2
"""Issue 10's bound. Measured 2026-12-01 (best of 3, CPU, under a load average of 4): 0.03-0.09 s for
these notes; a super-linear regression costs seconds (one such cost 74 s on the long token), far past it."""
BUDGET_CLI = 2.0


_TIMER = """
import json, statistics, sys, time
sys.path.insert(0, {root!r})
from plugin import evaluate_note
text = sys.stdin.read()
evaluate_note(text)  # warm-up: lexicon compiled, caches filled
times = []
for _ in range(3):  # CPU time of this process: what the engine does, not what other processes on the box do
    started = time.process_time()
    evaluation = evaluate_note(text)
    times.append(time.process_time() - started)
print(json.dumps({{"times": times, "lines": len(evaluation.lines)}}))
"""
HARD_LIMIT = 60.0  # a regression answers "too slow" instead of stalling the suite


@pytest.mark.parametrize("name", NOTES)
def test_adversarial_note_is_evaluated_in_bounded_time(name: str) -> None:
    """Timed in-process (in a child interpreter, so a super-linear regression is cut off at HARD_LIMIT)."""
    import json
    from pathlib import Path

    text = NOTES[name]
    assert N - 100 <= len(text) <= N
    root = str(Path(__file__).resolve().parents[2])
    try:
        out = subprocess.run([sys.executable, "-c", _TIMER.format(root=root)], input=text, capture_output=True,
                             text=True, timeout=HARD_LIMIT, encoding="utf-8")
    except subprocess.TimeoutExpired:
        pytest.fail(f"{name}: four evaluations took over {HARD_LIMIT} s")
    assert out.returncode == 0, out.stderr[-1000:]
    result = json.loads(out.stdout)
    assert result["lines"] == 1  # an answer, not a crash
    best = min(result["times"])  # the least-disturbed of three runs, as timeit reports
    assert best < BUDGET_IN_PROCESS, f"{name}: best of 3 {best:.3f} s over {BUDGET_IN_PROCESS} s ({[round(t, 3) for t in result['times']]})"


@pytest.mark.parametrize("name", ["clock-times-before-heading", "treatment-time-form-feeds", "em-space-runs"])
def test_check_answers_on_an_adversarial_note_in_bounded_time(tmp_path, name: str) -> None:
    note = tmp_path / f"{name}.txt"
    note.write_text(NOTES[name], encoding="utf-8")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        out = subprocess.run([sys.executable, "-m", "cds97530", "check", "--format", "json", str(note)],
                             capture_output=True, text=True, timeout=HARD_LIMIT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{name}: cds97530 check took over {HARD_LIMIT} s")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # the command's own CPU time, start-up included (wall time on a shared box measures the neighbours)
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert out.returncode in (0, 1), out.stderr[-500:]
    assert used < BUDGET_CLI, f"{name}: cds97530 check used {used:.2f} s of CPU"


# --- ReDoS: every lexicon pattern --------------------------------------------------------------


def test_the_redos_check_catches_what_a_billing_lead_might_write() -> None:
    assert redos_findings(r"(?:\w+\s?)+$")  # nested repeats: exponential
    assert redos_findings(r"(?:\d+[\s-]*)+min")
    assert redos_findings(r"Treatment\s*time\s*\W*\s*\W*\s*\d+")  # adjacent overlapping repeats: cubic
    assert not redos_findings(r"(?<![A-Za-z0-9])(?:lift(?:s|ed|ing)?)(?![A-Za-z0-9])")


def test_no_lexicon_pattern_backtracks_super_linearly() -> None:
    failures = redos_failures(load_ruleset().lexicon)
    assert not failures, [str(f) for f in failures]
