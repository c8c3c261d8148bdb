"""Which service the text billed as 97530 actually documents.

Each activity clause of the 97530 text is labelled with the service it describes (see
``plugin.reading``). The line keeps 97530 unless another service describes more of the
clauses than 97530 does; a tie stands with the clinician's code. Two or more patients treated
at once make it group therapy (97150) whatever the activities were. Stated aims ("for quad
strengthening", "to improve balance") only break ties between the other services.
"""
from __future__ import annotations

from collections import Counter

from plugin.model import DocumentedService, Evidence
from plugin.reading import TA, Reading

GROUP = "97150"
CLOSE_MARGIN = 1
"""A decision is close when the chosen service has at most this many more activity statements than
the next one (e.g. 3 lifting clauses against 2 balance clauses): the card asks for review."""


def documented_service(reading: Reading) -> DocumentedService | None:
    """The documented code with its evidence, or None when no activity is described at all."""
    if reading.group:
        return DocumentedService(GROUP, 1.0, reading.group[:3], {GROUP: float(len(reading.group))}, decided_by="group")
    counts = Counter(c.code for c in reading.activity_clauses)
    if not counts:
        return None
    total = sum(counts.values())
    weights: dict[str, float] = {}
    for clause in reading.activity_clauses:
        weights[clause.code] = weights.get(clause.code, 0.0) + clause.scores.get(clause.code, 0.0)
    others = {code: n for code, n in counts.items() if code != TA}
    chosen = TA
    decided_by = "activities"
    if others:
        best = max(others, key=lambda c: (others[c], reading.purpose_scores.get(c, 0.0), weights.get(c, 0.0), c))
        if others[best] > counts.get(TA, 0):
            chosen = best
        elif counts.get(TA, 0) * 2 <= total and others[best] >= 1 and _stated_aim(reading, best):
            chosen = best  # mixed tasks, and the note says what they were for ("Aim: trunk postural control")
            decided_by = "stated-aim"
        elif others[best] == counts.get(TA, 0):
            decided_by = "tie-kept-billed-code"
    ranked = sorted(counts, key=lambda c: (-counts[c], c != TA))
    runner_up = next((c for c in ranked if c != chosen), None)
    margin = counts[chosen] - (counts[runner_up] if runner_up else 0)
    close = decided_by != "activities" or (runner_up is not None and margin <= CLOSE_MARGIN)
    evidence: list[Evidence] = []
    for clause in reading.activity_clauses:
        if clause.code == chosen:
            evidence.extend(clause.evidence)
    scores = {code: round(n / total, 3) for code, n in counts.items()}
    return DocumentedService(chosen, round(counts[chosen] / total, 3), tuple(evidence[:6]), scores,
                             decided_by=decided_by, runner_up=runner_up, margin=margin, close=close)


def _stated_aim(reading: Reading, code: str) -> bool:
    """The note states an aim of ``code`` and of no other service as strongly.

    When 97530 clauses are no more than half of the block's activity clauses, the note's stated aim
    of another service decides: the labelling conventions make a stated balance/postural-control aim
    decide when the tasks look dynamic (dev2-README "Balance"). A block mostly of 97530 tasks stays
    97530 whatever aim is written ("STS x10 to improve balance with transfers").
    """
    aims = reading.purpose_scores
    top = aims.get(code, 0.0)
    return top > 0 and all(v < top for c, v in aims.items() if c != code)


MINUTES_COVERAGE = 0.6
"""Timed pieces must account for this share of the line's minutes before their minutes decide."""


def by_minutes(
    documented: DocumentedService | None, minutes: dict[str, int], line_minutes: int | None, reading: Reading,
) -> DocumentedService | None:
    """The labelling conventions recode a line when its billed minutes were *mainly* another
    service. When the note times the pieces of the block (covering at least ``MINUTES_COVERAGE`` of
    the line's minutes), the service with more than half of the line's minutes is the documented one,
    whatever the count of clauses says; otherwise, or for a group session, ``documented`` stands."""
    if documented is None or documented.decided_by == "group" or not line_minutes or not minutes:
        return documented
    if sum(minutes.values()) < MINUTES_COVERAGE * line_minutes:
        return documented
    code, top = max(minutes.items(), key=lambda kv: (kv[1], kv[0] == TA))
    if code == documented.code or top * 2 <= line_minutes:
        return documented
    runner_up = documented.code
    share = round(top / sum(minutes.values()), 3)
    evidence = tuple(ev for clause in reading.activity_clauses if clause.code == code for ev in clause.evidence)[:6]
    return DocumentedService(code, share, evidence,
                             {c: round(m / sum(minutes.values()), 3) for c, m in minutes.items()},
                             decided_by="minutes", runner_up=runner_up, margin=0, close=True)
