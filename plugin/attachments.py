"""Turn a note attachment (bytes + content type) into plain text, in time and memory linear in its size.

EHRs hand notes over as text/plain, text/html or XHTML (Epic, Oracle Health), text/rtf (Epic) and
application/pdf (scanned or generated reports). An unknown type, a corrupt file or one over the
size limit raises ``AttachmentError`` so the caller can report "the note could not be read"
instead of crashing. Everything else that is too big is *cut*, not refused: the text read so far
is kept and each cut is reported in ``Extraction.cuts`` (the evaluation carries it as an input
issue), so a clinician sees that only part of the note was checked.

    >>> extract_text(b"<p>Ther act 24 min</p>", "text/html")
    'Ther act 24 min'
    >>> extract(b"<p>x" * 300_000, "text/html").cuts[0]  # doctest: +ELLIPSIS
    'the HTML note has more than ... elements; only the first ... were read'

Why HTML is not parsed into a tree: an HTML5 tree builder checks the stack of open elements on
every tag, so markup nested N deep costs N² (measured: lexbor 8.6 s for 40 000 nested ``<div>``,
BeautifulSoup 77 s for 78 KB of ``<p>``). Text extraction needs no tree, only a tokenizer: every
step below moves forward through the markup, so the cost is linear, and the element count is capped.
"""
from __future__ import annotations

import html
import io
import re
from dataclasses import dataclass, fields
from typing import Any

from plugin.errors import AttachmentError

MAX_ATTACHMENT_BYTES = 8 * 1024 * 1024
"""Larger attachments are refused: a treatment note is a few KB; 8 MB leaves room for scanned PDFs."""

MAX_TEXT_CHARS = 500_000
"""Extracted text is cut here (the engine reads 60 K characters of it) so a decompression bomb or
a huge export cannot exhaust memory downstream."""

MAX_MARKUP_CHARS = 4_000_000
"""HTML/XHTML/XML markup and RTF source past this many characters are not read."""

MAX_HTML_ELEMENTS = 100_000
"""Tags read in one HTML note; a long note has a few thousand."""

MAX_PDF_PAGES = 60

_TEXT_TYPES = {"text/plain", "text/markdown", "text/x-markdown"}
_HTML_TYPES = {"text/html", "application/xhtml+xml", "application/xhtml", "text/xhtml"}
_RTF_TYPES = {"text/rtf", "application/rtf", "text/richtext"}
_PDF_TYPES = {"application/pdf"}
_XML_TYPES = {"application/xml", "text/xml", "application/hl7-v3+xml", "application/cda+xml"}

SUPPORTED_CONTENT_TYPES: tuple[str, ...] = tuple(
    sorted(_TEXT_TYPES | _HTML_TYPES | _RTF_TYPES | _PDF_TYPES | _XML_TYPES)
)


@dataclass(frozen=True, slots=True)
class Extraction:
    """The text of one attachment and what was cut from it (plain sentences, no note text)."""

    text: str
    cuts: tuple[str, ...] = ()


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
    return extract(data, content_type).text


def extract(data: bytes, content_type: str | None) -> Extraction:
    """Plain text of an attachment and the cuts made to it; ``AttachmentError`` if unreadable."""
    if len(data) > MAX_ATTACHMENT_BYTES:
        raise AttachmentError(f"attachment is {len(data) // 1024} KB, over the {MAX_ATTACHMENT_BYTES // (1024 * 1024)} MB limit")
    mtype, charset = media_type(content_type)
    if not mtype:
        mtype = _sniff(data)
    cuts: list[str] = []
    if mtype in _TEXT_TYPES:
        text = _decode(data, charset)
    elif mtype in _HTML_TYPES or mtype in _XML_TYPES:
        text = _html_to_text(_capped_markup(_decode(data, charset), "HTML", cuts), cuts)
    elif mtype in _RTF_TYPES:
        text = _rtf_to_text(_capped_markup(_decode(data, charset), "RTF", cuts))
    elif mtype in _PDF_TYPES:
        text = _pdf_to_text(data, cuts)
    else:
        raise AttachmentError(f"unsupported content type {mtype!r}")
    if len(text) > MAX_TEXT_CHARS * 2:  # normalising only shrinks text; do not normalise megabytes we drop
        text = text[: MAX_TEXT_CHARS * 2]
    text = _normalise(text)
    if not text.strip():
        raise AttachmentError(f"no readable text in the {mtype} attachment")
    if len(text) > MAX_TEXT_CHARS:
        cuts.append(f"the note text is over {MAX_TEXT_CHARS // 1000} K characters; the rest was not read")
        text = text[:MAX_TEXT_CHARS]
    return Extraction(text=text, cuts=tuple(dict.fromkeys(cuts)))


def _capped_markup(markup: str, kind: str, cuts: list[str]) -> str:
    if len(markup) <= MAX_MARKUP_CHARS:
        return markup
    cuts.append(f"the {kind} note is over {MAX_MARKUP_CHARS // 1_000_000} M characters; the rest was not read")
    return markup[:MAX_MARKUP_CHARS]


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


_BLOCK_TAGS = frozenset({
    "p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table", "section",
    "article", "header", "footer", "ul", "ol", "dt", "dd", "pre", "blockquote", "paragraph", "item",
    "hr", "caption", "thead", "tbody", "title", "component", "text", "list", "body",
})
_CELL_TAGS = frozenset({"td", "th"})
_RAW_TEXT_TAGS = frozenset({"script", "style", "template", "noscript", "textarea", "xmp", "iframe", "noembed"})
_TOKEN = re.compile(r"<(?:(!--)|(!\[CDATA\[)|[!?]|(/?)([A-Za-z][A-Za-z0-9:._-]{0,63}))")
"""The start of the next comment, CDATA section, declaration or tag (a ``<`` that starts none is text)."""
_RAW_TEXT_END = {name: re.compile(rf"</{name}\b", re.IGNORECASE) for name in _RAW_TEXT_TAGS}


def _html_to_text(markup: str, cuts: list[str]) -> str:  # noqa: C901 - a one-pass tokenizer: one branch per token kind (comment, CDATA, declaration, tag)
    """Text of HTML, XHTML or XML in one forward pass: block tags become line breaks, table cells
    spaces, script/style content is dropped, entities are decoded. Every search starts where
    the last one ended, so the pass is linear whatever the nesting; the tag count is capped."""
    out: list[str] = []
    size = 0
    elements = 0
    i, n = 0, len(markup)
    find = markup.find
    search = _TOKEN.search
    while i < n:
        token = search(markup, i)
        if token is None:
            out.append(markup[i:])
            break
        lt = token.start()
        if lt > i:
            out.append(markup[i:lt])
            size += lt - i
            if size > MAX_TEXT_CHARS * 2:
                break
        elements += 1
        if elements > MAX_HTML_ELEMENTS:
            cuts.append(f"the HTML note has more than {MAX_HTML_ELEMENTS:,} elements; only the first "
                        f"{MAX_HTML_ELEMENTS:,} were read")
            break
        if token.group(1):  # <!-- comment -->
            end = find("-->", lt + 4)
            i = n if end < 0 else end + 3
            continue
        if token.group(2):  # <![CDATA[ text ]]> (escaped here because the whole text is unescaped below)
            end = find("]]>", lt + 9)
            out.append(html.escape(markup[lt + 9:] if end < 0 else markup[lt + 9:end], quote=False))
            i = n if end < 0 else end + 3
            continue
        name = token.group(4)
        if name is None:  # <!DOCTYPE …>, <?xml …?>
            end = find(">", lt + 2)
            i = n if end < 0 else end + 1
            continue
        end = _tag_end(markup, token.end())
        name = name.lower().rpartition(":")[2]  # XHTML/CDA prefixes: <hl7:paragraph>
        i = end
        if name in _BLOCK_TAGS:
            out.append("\n")
        elif name in _CELL_TAGS:
            out.append(" ")
        if not token.group(3) and name in _RAW_TEXT_TAGS and markup[end - 2:end] != "/>":
            found = _RAW_TEXT_END[name].search(markup, end)
            i = n if found is None else found.start()
    return html.unescape("".join(out))


_QUOTE = re.compile(r"[\"']")


def _tag_end(markup: str, start: int) -> int:
    """Index just past the ``>`` that closes a tag (a ``>`` inside a quoted attribute value does
    not count), or the end of the markup. Moves forward only."""
    n = len(markup)
    i = start
    find = markup.find
    while i < n:
        gt = find(">", i)
        if gt < 0:
            return n
        quote = _QUOTE.search(markup, i, gt)
        if quote is None:
            return gt + 1
        close = find(quote.group(), quote.end())
        if close < 0:
            return gt + 1  # an unclosed quote: stop at the first ">" rather than swallow the note
        i = close + 1
    return n


def _rtf_to_text(rtf: str) -> str:
    from striprtf.striprtf import rtf_to_text

    if not rtf.lstrip().startswith("{\\rtf"):
        raise AttachmentError("the RTF attachment does not start with {\\rtf")
    try:
        return str(rtf_to_text(rtf, errors="ignore"))
    except (ValueError, IndexError, RecursionError) as exc:
        raise AttachmentError("the RTF attachment is malformed") from exc


_PDF_LIMITS: dict[str, Any] = {
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


def _pdf_to_text(data: bytes, cuts: list[str]) -> str:
    from pypdf import apply_configuration

    with apply_configuration(**_pdf_limits()):
        return _read_pdf(data, cuts)


def _pdf_limits() -> dict[str, Any]:
    """The limits above that the installed pypdf knows. pypdf adds limits release by release (7.0,
    the floor in pyproject.toml, knows all of them) and refuses a name it does not know with a
    TypeError, which once made every PDF note an unexpected error and the hook answer no cards.
    tests/plugin/test_pdf_limits.py fails when the installed pypdf leaves one of them out."""
    from pypdf import Configuration

    known = {field.name for field in fields(Configuration)}
    return {name: value for name, value in _PDF_LIMITS.items() if name in known}


def _read_pdf(data: bytes, cuts: list[str]) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError, PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            raise AttachmentError("the PDF attachment is encrypted")
        pages = reader.pages
        count = len(pages)
        if count > MAX_PDF_PAGES:
            cuts.append(f"the PDF has {count} pages; only the first {MAX_PDF_PAGES} were read")
        out: list[str] = []
        size = 0
        for number in range(min(count, MAX_PDF_PAGES)):
            chunk = pages[number].extract_text() or ""
            size += len(chunk)
            out.append(chunk)
            if size > MAX_TEXT_CHARS:
                if number + 1 < count:
                    cuts.append(f"the PDF holds over {MAX_TEXT_CHARS // 1000} K characters of text; "
                                f"pages after page {number + 1} were not read")
                break
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
