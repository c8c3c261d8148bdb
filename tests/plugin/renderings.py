"""Mechanical re-renderings of a treatment note: the same visit written in another format.

Each function takes a note and returns the note rewritten (or None when the format does not apply,
e.g. a note with no "Name N min:" headings has none to turn into a table). None of them changes
what was done: they move minutes between headings, tables, clock blocks and prose, expand or
contract abbreviations, change line breaks and spelling, and add unchecked checkbox items. An
engine that reads the visit and not the format gives every rendering the same answers.
"""
from __future__ import annotations

import itertools
import re
from collections.abc import Callable

# "Ther act 24 min: ..." / "TA (20 min): ..." / "Therapeutic activities - 24 min: ..." at a line start
_HEADING = re.compile(
    r"^(?P<lead>[ \t\-*•]*)(?P<name>[A-Za-z][A-Za-z .&/]{1,40}?(?:\s*\(\d{5}\))?)\s*(?:-\s*|\(\s*)?"
    r"(?P<min>\d{1,3})\s*min(?:utes)?\.?\s*\)?\s*(?::|-)\s*(?P<body>.+)$",
    re.MULTILINE,
)
_NOT_A_SERVICE = re.compile(r"^(?:total|timed|session|visit|time|class|treatment\s+time)\b", re.IGNORECASE)

_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "thirteen",
         "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def in_words(n: int) -> str:
    if n < 20:
        return _ONES[n]
    tens, ones = divmod(n, 10)
    return _TENS[tens] + ("" if ones == 0 else "-" + _ONES[ones])


def _service_headings(note: str) -> list[re.Match[str]]:
    return [m for m in _HEADING.finditer(note) if not _NOT_A_SERVICE.match(m.group("name").strip())]


def pipe_table(note: str) -> str | None:
    """Headed blocks become rows of a pipe table with Intervention | Min | Detail columns."""
    heads = _service_headings(note)
    if not heads:
        return None
    rows = ["| Intervention | Min | Detail |", "|---|---|---|"]
    rows += [f"| {m.group('name').strip()} | {m.group('min')} | {m.group('body').strip()} |" for m in heads]
    first, last = heads[0].start(), heads[-1].end()
    return note[:first] + "\n".join(rows) + note[last:] if _contiguous(note, heads) else None


def _contiguous(note: str, heads: list[re.Match[str]]) -> bool:
    """The headed blocks are consecutive lines (nothing else between them to lose)."""
    return all(note[a.end():b.start()].strip() == "" for a, b in itertools.pairwise(heads))


def clock_blocks(note: str) -> str | None:
    """'Ther act 24 min:' becomes '0900-0924 Ther act:', blocks one after another from 09:00."""
    heads = _service_headings(note)
    if not heads:
        return None
    out, pos, clock = [], 0, 9 * 60
    for m in heads:
        start, end = clock, clock + int(m.group("min"))
        clock = end
        out.append(note[pos:m.start()])
        block = f"{start // 60:02d}{start % 60:02d}-{end // 60:02d}{end % 60:02d}"
        out.append(f"{m.group('lead')}{block} {m.group('name').strip()}: {m.group('body')}")
        pos = m.end()
    out.append(note[pos:])
    return "".join(out)


def minutes_in_prose(note: str) -> str | None:
    """'Ther act 24 min: body' becomes 'Ther act was done for 24 minutes. Body' (no heading)."""
    heads = _service_headings(note)
    if not heads:
        return None
    out, pos = [], 0
    for m in heads:
        body = m.group("body").strip()
        out.append(note[pos:m.start()])
        out.append(f"{m.group('lead')}{m.group('name').strip()} was done for {m.group('min')} minutes: {body}")
        pos = m.end()
    out.append(note[pos:])
    return "".join(out)


def minutes_in_words(note: str) -> str | None:
    """Every 'N min' / 'N minutes' written in words ('twenty-four minutes')."""
    changed = re.sub(r"(?<![\d:/.x])(\d{1,2})\s*(?:minutes|mins|min)\b(?!\s*/)", lambda m: f"{in_words(int(m.group(1)))} minutes", note)
    return changed if changed != note else None


def line_breaks_removed(note: str) -> str | None:
    """One paragraph: each line closed with a full stop when it has no closing mark, then joined.
    Not for tables: a table without its line breaks is no longer a table in any EMR."""
    lines = [ln.strip() for ln in note.splitlines() if ln.strip()]
    if any(ln.count("|") >= 2 or "\t" in ln for ln in note.splitlines()):
        return None
    return " ".join(ln if ln[-1] in ".;:!?" else ln + "." for ln in lines)


def line_breaks_doubled(note: str) -> str:
    return note.replace("\n", "\n\n")


_EXPAND = [
    (r"\bpt\b", "patient"), (r"\bPt\b", "Patient"), (r"\bw/(?=\s)", "with"), (r"\bw/o\b", "without"),
    (r"\bvc\b", "verbal cues"), (r"\btc\b", "tactile cues"), (r"\bCGA\b", "contact guard assist"),
    (r"\bSBA\b", "stand-by assist"), (r"\bmin A\b", "minimal assist"), (r"\bmod A\b", "moderate assist"),
    (r"\bLTG\b", "long-term goal"), (r"\bSTG\b", "short-term goal"), (r"\bHEP\b", "home exercise program"),
    (r"\bther ex\b", "therapeutic exercise"), (r"\bTher ex\b", "Therapeutic exercise"),
    (r"\bther act\b", "therapeutic activities"), (r"\bTher act\b", "Therapeutic activities"),
    (r"\bRTW\b", "return to work"), (r"\bLOB\b", "loss of balance"), (r"\bSTS\b", "sit-to-stand"),
    (r"\breps\b", "repetitions"), (r"\bB UE\b", "both arms"),
]
_CONTRACT = [
    (r"\bpatient\b", "pt"), (r"\bPatient\b", "Pt"), (r"\bwith\b", "w/"), (r"\bverbal cues\b", "vc"),
    (r"\btactile cues\b", "tc"), (r"\bcontact guard(?: assist)?\b", "CGA"), (r"\bminimal assist(?:ance)?\b", "min A"),
    (r"\bmoderate assist(?:ance)?\b", "mod A"), (r"\blong-term goal\b", "LTG"), (r"\bshort-term goal\b", "STG"),
    (r"\btherapeutic activities\b", "ther act"), (r"\bTherapeutic activities\b", "Ther act"),
    (r"\btherapeutic exercise\b", "ther ex"), (r"\bTherapeutic exercise\b", "Ther ex"),
    (r"\bminutes\b", "min"), (r"\brepetitions\b", "reps"), (r"\bfeet\b", "ft"), (r"\bpounds\b", "lb"),
    (r"\bsit-to-stand\b", "STS"), (r"\bloss of balance\b", "LOB"),
]
_BRITISH = [
    (r"\bpracticed\b", "practised"), (r"\bpracticing\b", "practising"), (r"\bcolor\b", "colour"),
    (r"\bcenter\b", "centre"), (r"\bstabilization\b", "stabilisation"), (r"\bmobilization\b", "mobilisation"),
    (r"\borganize\b", "organise"), (r"\bbehavior\b", "behaviour"), (r"\bmeters\b", "metres"),
    (r"\bpediatric\b", "paediatric"), (r"\bPeds\b", "Paeds"), (r"\bedema\b", "oedema"), (r"\bfavor\b", "favour"),
    (r"\bprogram\b", "programme"), (r"\bgray\b", "grey"), (r"\bcanceled\b", "cancelled"), (r"\bfacilitated\b", "facilitated"),
    (r"\bhemiparesis\b", "hemiparesis"), (r"\banesthesia\b", "anaesthesia"), (r"\borthopedic\b", "orthopaedic"),
]


def _apply(pairs: list[tuple[str, str]], note: str) -> str | None:
    out = note
    for pattern, repl in pairs:
        out = re.sub(pattern, repl, out)
    return out if out != note else None


def abbreviations_expanded(note: str) -> str | None:
    return _apply(_EXPAND, note)


def abbreviations_contracted(note: str) -> str | None:
    return _apply(_CONTRACT, note)


def british_spelling(note: str) -> str | None:
    return _apply(_BRITISH, note)


def unchecked_boxes_added(note: str) -> str:
    """An EMR checkbox header whose boxes are all unchecked: it documents nothing."""
    return "Services: [ ] Gait training  [ ] Group therapy  [ ] Balance  [ ] Self-care/ADL  [ ] Manual therapy\n" + note


RENDERINGS: dict[str, Callable[[str], str | None]] = {
    "pipe-table": pipe_table,
    "clock-blocks": clock_blocks,
    "minutes-in-prose": minutes_in_prose,
    "minutes-in-words": minutes_in_words,
    "line-breaks-removed": line_breaks_removed,
    "line-breaks-doubled": line_breaks_doubled,
    "abbreviations-expanded": abbreviations_expanded,
    "abbreviations-contracted": abbreviations_contracted,
    "british-spelling": british_spelling,
    "unchecked-boxes-added": unchecked_boxes_added,
}
