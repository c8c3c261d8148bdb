"""The page's view model: evidence highlighting and line views (pure functions)."""
from __future__ import annotations

from dataclasses import replace

from plugin.model import Evidence, Finding, NoteText, Status
from smart_app.view import highlight, line_views


def test_highlight_plain_text_is_one_piece() -> None:
    pieces = highlight("no evidence here", [])
    assert [(p.text, p.marks) for p in pieces] == [("no evidence here", ())]


def test_highlight_overlapping_spans_cut_at_every_boundary() -> None:
    pieces = highlight("abcdefgh", [(1, 4, "x"), (3, 6, "y")])
    assert [(p.text, p.marks) for p in pieces] == [
        ("a", ()), ("bc", ("x",)), ("d", ("x", "y")), ("ef", ("y",)), ("gh", ()),
    ]
    assert "".join(p.text for p in pieces) == "abcdefgh"


def test_highlight_drops_spans_outside_the_text() -> None:
    pieces = highlight("abc", [(2, 10, "x"), (-1, 2, "y"), (1, 1, "z")])
    assert [(p.text, p.marks) for p in pieces] == [("abc", ())]


def test_highlight_merges_adjacent_pieces_with_same_marks() -> None:
    pieces = highlight("abcdef", [(0, 2, "x"), (2, 4, "x")])
    assert [(p.text, p.marks) for p in pieces] == [("abcd", ("x",)), ("ef", ())]


def test_line_view_highlights_each_evidence_where_it_stands(smart_kit) -> None:
    evaluation = smart_kit.crafted_evaluation()
    (view,) = line_views(evaluation)
    (note,) = view.notes
    text = "".join(p.text for p in note.pieces)
    assert text == smart_kit.NOTE
    marked = {p.text: set(p.marks) for p in note.pieces if p.marks}
    assert marked["carry laundry upstairs"] == {"functional-goal"}
    assert "patient-response" in marked["Completed 3/4 carries without rest"]
    # positions are preserved: every marked piece sits at its evidence offset
    offset = 0
    for piece in note.pieces:
        if piece.marks:
            assert smart_kit.NOTE[offset:offset + len(piece.text)] == piece.text
        offset += len(piece.text)
    assert note.highlighted == 6  # 5 finding spans + 1 documented-service span (recode)


def test_evidence_that_does_not_quote_the_note_is_not_highlighted(smart_kit) -> None:
    evaluation = smart_kit.crafted_evaluation()
    line = evaluation.lines[0]
    bad = Finding("dynamic-activity", Status.MET, "x", (Evidence(0, 5, "WRONG", "DocumentReference/d1"),))
    evaluation = replace(evaluation, lines=(replace(line, findings=(bad,), documented=None),))
    (view,) = line_views(evaluation)
    assert view.notes[0].highlighted == 0


def test_evidence_goes_to_its_own_note_only(smart_kit) -> None:
    evaluation = smart_kit.crafted_evaluation()
    other = NoteText("DocumentReference/d2", "carry laundry upstairs (other note)", "text/plain", "Other")
    evaluation = replace(evaluation, notes=(*evaluation.notes, other))
    (view,) = line_views(evaluation)
    assert [n.note_id for n in view.notes] == ["DocumentReference/d1"]


def test_criteria_in_report_order_with_examples_for_missing(smart_kit) -> None:
    (view,) = line_views(smart_kit.crafted_evaluation())
    assert [c.key for c in view.criteria] == [
        "dynamic-activity", "functional-goal", "skilled-intervention", "patient-response", "time-documented",
    ]
    assert [c.key for c in view.examples] == ["skilled-intervention"]
    assert view.method_label.startswith("CMS") and view.alternative_label.startswith("AMA")
    assert view.verdict_label == "Recode suggested"
