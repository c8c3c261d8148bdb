"""pypdf's resource limits reach every PDF note, whichever pypdf in the declared range is installed.

pypdf 6.18 to 6.20 refuse a limit they do not know yet with a TypeError, which the hook once turned
into "no cards" for every PDF note; pypdf before 6.18 has no ``apply_configuration`` at all (issue 16).
The floor in pyproject.toml is the first release that knows every limit plugin/attachments.py sets.
"""
from __future__ import annotations

import dataclasses
import time

import pypdf
import pytest
from pypdf import apply_configuration, get_configuration

from plugin import attachments
from plugin.attachments import extract
from plugin.errors import AttachmentError
from plugin.preload import simple_pdf

NOTE = "Therapeutic activities 97530: sit to stand transfers with min assist, 24 min."

PYPDF_6_18_LIMITS = (
    # The fields of pypdf 6.18.0's Configuration (dataclasses.fields, read from that release).
    "array_based_stream_maximum_output_length", "disable_legacy_handling", "flate_maximum_columns",
    "flate_maximum_row_length", "image_maximum_buffer_size", "jbig2_maximum_output_length",
    "jbig2dec_binary", "lzw_maximum_output_length", "maximum_declared_stream_length",
    "outline_maximum_depth", "outline_maximum_entries", "page_merge_box", "page_tree_maximum_depth",
    "page_tree_maximum_entries", "run_length_maximum_output_length",
    "xform_maximum_invocations_per_extraction", "xmp_maximum_element_count", "xmp_maximum_input_length",
    "zlib_maximum_output_length", "zlib_maximum_recovery_input_length",
)


def _pdf(text: str) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=10)
    pdf.multi_cell(0, 5, text)
    return bytes(pdf.output())


def _flate_bomb_pdf(inflated: int) -> bytes:
    """One page whose content stream is a line of text and then ``inflated`` bytes of spaces, deflated
    (the library's one hand-built PDF: plugin.preload.simple_pdf)."""
    return simple_pdf(b"BT /F1 12 Tf 72 712 Td (Ther act 24 min) Tj ET" + b" " * inflated)


def test_every_limit_is_applied_by_the_installed_pypdf() -> None:
    with apply_configuration(**attachments._pdf_limits()):
        config = get_configuration()
    not_applied = sorted(name for name, value in attachments._PDF_LIMITS.items() if getattr(config, name, None) != value)
    assert not_applied == [], f"pypdf {pypdf.__version__} does not apply {not_applied}"


def test_an_older_pypdf_gets_the_limits_it_knows_and_still_reads_the_note(monkeypatch: pytest.MonkeyPatch) -> None:
    older = dataclasses.make_dataclass("Configuration", [(name, object, dataclasses.field(default=None))
                                                         for name in PYPDF_6_18_LIMITS])
    monkeypatch.setattr(pypdf, "Configuration", older)
    left_out = set(attachments._PDF_LIMITS) - set(attachments._pdf_limits())
    assert left_out == {"brotli_maximum_output_length", "stream_decoding_work_maximum_length",
                        "stream_parsing_work_maximum_count", "page_tree_maximum_page_entries"}
    assert "sit to stand transfers" in extract(_pdf(NOTE), "application/pdf").text


def test_the_bomb_fixture_is_a_readable_pdf() -> None:
    assert "Ther act 24 min" in extract(_flate_bomb_pdf(1_000), "application/pdf").text


def test_a_flate_bomb_is_refused_before_it_inflates() -> None:
    bomb = _flate_bomb_pdf(60_000_000)  # ~60 KB on the wire, 60 MB inflated; the zlib limit is 4 MB
    assert len(bomb) < 200_000
    started = time.process_time()
    with pytest.raises(AttachmentError, match="cannot be read"):
        extract(bomb, "application/pdf")
    assert time.process_time() - started < 2.0
