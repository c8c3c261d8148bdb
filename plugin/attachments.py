"""Turn a note attachment (bytes + content type) into plain text.

EHRs hand notes over as text/plain, text/html or XHTML (Epic, Oracle Health), text/rtf (Epic) and
application/pdf (scanned or generated reports). Each format goes through a well-kept extractor; an
unknown type, a corrupt file or one over the limits raises ``AttachmentError`` so the caller can
report "the note could not be read" instead of crashing.

    >>> extract_text(b"<p>Ther act 24 min</p>", "text/html")
    'Ther act 24 min'
"""
from __future__ import annotations

import io
import re

from plugin.errors import AttachmentError

MAX_ATTACHMENT_BYTES = 8 * 1024 * 1024
"""Larger attachments are refused: a treatment note is a few KB; 8 MB leaves room for scanned PDFs."""

MAX_TEXT_CHARS = 2_000_000
"""Extracted text is cut here so a decompression bomb cannot exhaust memory downstream."""

MAX_PDF_PAGES = 60

_TEXT_TYPES = {"text/plain", "text/markdown", "text/x-markdown"}
_HTML_TYPES = {"text/html", "application/xhtml+xml", "application/xhtml", "text/xhtml"}
_RTF_TYPES = {"text/rtf", "application/rtf", "text/richtext"}
_PDF_TYPES = {"application/pdf"}
_XML_TYPES = {"application/xml", "text/xml", "application/hl7-v3+xml", "application/cda+xml"}

SUPPORTED_CONTENT_TYPES: tuple[str, ...] = tuple(
    sorted(_TEXT_TYPES | _HTML_TYPES | _RTF_TYPES | _PDF_TYPES | _XML_TYPES)
)


def media_type(content_type: str | None) -> tuple[str, str | None]:
    """Split ``text/plain; charset=utf-8`` into ("text/plain", "utf-8")."""
    if not content_type or not isinstance(content_type, str):
        return "", None
    parts = [p.strip() for p in content_type.split(";")]
    charset = None
    for part in parts[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == "charset" and value:
            charset = value.strip().strip('"').lower()
    return parts[0].lower(), charset


def extract_text(data: bytes, content_type: str | None) -> str:
    """Plain text of an attachment; raises ``AttachmentError`` with a reason a clinician can act on."""
    if len(data) > MAX_ATTACHMENT_BYTES:
        raise AttachmentError(f"attachment is {len(data) // 1024} KB, over the {MAX_ATTACHMENT_BYTES // (1024 * 1024)} MB limit")
    mtype, charset = media_type(content_type)
    if not mtype:
        mtype = _sniff(data)
    if mtype in _TEXT_TYPES:
        text = _decode(data, charset)
    elif mtype in _HTML_TYPES or mtype in _XML_TYPES:
        text = _html_to_text(_decode(data, charset), xml=mtype in _XML_TYPES)
    elif mtype in _RTF_TYPES:
        text = _rtf_to_text(_decode(data, charset))
    elif mtype in _PDF_TYPES:
        text = _pdf_to_text(data)
    else:
        raise AttachmentError(f"unsupported content type {mtype!r}")
    text = _normalise(text)
    if not text.strip():
        raise AttachmentError(f"no readable text in the {mtype} attachment")
    return text[:MAX_TEXT_CHARS]


def _sniff(data: bytes) -> str:
    head = data[:512].lstrip()
    if head.startswith(b"%PDF"):
        return "application/pdf"
    if head.startswith(b"{\\rtf"):
        return "text/rtf"
    if head[:1] == b"<":
        return "text/html"
    return "text/plain"


def _decode(data: bytes, charset: str | None) -> str:
    """Decode bytes; notes from older systems arrive in cp1252, so fall back rather than fail."""
    for encoding in (charset, "utf-8-sig", "cp1252"):
        if not encoding:
            continue
        try:
            return data.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            continue
    return data.decode("latin-1")


_BLOCK_TAGS = (
    "p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table", "section",
    "article", "header", "footer", "ul", "ol", "dt", "dd", "pre", "blockquote", "paragraph", "item",
)


def _html_to_text(markup: str, *, xml: bool = False) -> str:
    from bs4 import BeautifulSoup
    from bs4 import XMLParsedAsHTMLWarning
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XMLParsedAsHTMLWarning)
        soup = BeautifulSoup(markup, "html.parser")
    for tag in soup(["script", "style", "head", "title", "meta"]):
        tag.decompose()
    for tag in soup.find_all(_BLOCK_TAGS):
        tag.insert_before("\n")
        tag.insert_after("\n")
    for cell in soup.find_all(["td", "th"]):
        cell.insert_after(" ")
    return soup.get_text()


def _rtf_to_text(rtf: str) -> str:
    from striprtf.striprtf import rtf_to_text

    if not rtf.lstrip().startswith("{\\rtf"):
        raise AttachmentError("the RTF attachment does not start with {\\rtf")
    try:
        return str(rtf_to_text(rtf, errors="ignore"))
    except (ValueError, IndexError, RecursionError) as exc:
        raise AttachmentError("the RTF attachment is malformed") from exc


_PDF_LIMITS = {
    # A treatment note is a few pages of text: pypdf's own resource limits, set far below its
    # defaults (75 MB streams, 2 M content operators) so a small "PDF bomb" is refused quickly.
    "maximum_declared_stream_length": 8_000_000,
    "zlib_maximum_output_length": 4_000_000,
    "lzw_maximum_output_length": 4_000_000,
    "run_length_maximum_output_length": 4_000_000,
    "array_based_stream_maximum_output_length": 4_000_000,
    "brotli_maximum_output_length": 4_000_000,
    "stream_decoding_work_maximum_length": 20_000_000,
    "stream_parsing_work_maximum_count": 150_000,
    "page_tree_maximum_entries": 1_000,
    "page_tree_maximum_page_entries": 20_000,
    "xform_maximum_invocations_per_extraction": 200,
    "image_maximum_buffer_size": 4_000_000,
}


def _pdf_to_text(data: bytes) -> str:
    from pypdf import apply_configuration

    with apply_configuration(**_PDF_LIMITS):
        return _read_pdf(data)


def _read_pdf(data: bytes) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError, PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            raise AttachmentError("the PDF attachment is encrypted")
        pages = reader.pages
        if len(pages) > MAX_PDF_PAGES:
            raise AttachmentError(f"the PDF has {len(pages)} pages, over the {MAX_PDF_PAGES}-page limit")
        out: list[str] = []
        size = 0
        for page in pages:
            chunk = page.extract_text() or ""
            size += len(chunk)
            if size > MAX_TEXT_CHARS:
                raise AttachmentError("the PDF expands to more text than a note can hold")
            out.append(chunk)
    except AttachmentError:
        raise
    except (PdfReadError, PyPdfError, ValueError, KeyError, TypeError, IndexError, AttributeError,
            RecursionError, OSError, MemoryError, ZeroDivisionError) as exc:
        raise AttachmentError("the PDF attachment cannot be read") from exc
    return "\n".join(out)


_SPACES = re.compile(r"(?<![ \u00a0\u2007\u202f])[ \u00a0\u2007\u202f]{1,2}(?![ \u00a0\u2007\u202f])")
_COLUMN_GAP = re.compile(r"[ \u00a0\u2007\u202f]{3,}")
_TABS = re.compile(r"\t+")
"""Spaces fold to one, but a tab or a run of 3+ spaces is a column gap in an EMR table export
("Code<TAB>Item<TAB>Min", "Activity type: Therapeutic activities (97530)    Duration: 25 min")
and is kept as one tab or three spaces, so plugin.layout can still read the columns."""
_BLANKS = re.compile(r"\n\s*\n\s*\n+")


def _normalise(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    text = _TABS.sub("\t", _SPACES.sub(" ", _COLUMN_GAP.sub("   ", text)))
    text = "\n".join(line.strip() for line in text.split("\n"))
    return _BLANKS.sub("\n\n", text).strip()
