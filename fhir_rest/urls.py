"""Which URLs a FHIR client may send a bearer token to, checked before anything is sent.

A ``fhirServer`` comes from the caller's request body, so it is hostile until proven otherwise:
it must be short, absolute http(s), with a host, without user info, query, fragment, backslash,
whitespace or control characters, and without dot segments, also when they are percent-encoded
(``%2e%2e``) or encoded twice (``%252e%252e``, which a server that decodes twice resolves to
``..``). The base is normalised (lower-case scheme and host, no default port, no trailing slash),
and a URL is "under" a base only if it names the same origin and a path inside the base's.

    base = check_base("https://EHR.example.org:443/fhir/")   # "https://ehr.example.org/fhir"
    under_base("https://ehr.example.org/fhir/Binary/1", base)  # True
    under_base("https://ehr.example.org/fhir/%252e%252e/x", base)  # False
"""
from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import unquote, urlsplit, urlunsplit

from fhir_rest.errors import FhirUrlError

MAX_BASE_LENGTH = 2048
MAX_URL_LENGTH = 8192
_UNSAFE = re.compile(r"[\x00-\x20\x7f\\]")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _decoded_forms(path: str, rounds: int = 4) -> list[str]:
    """The path and its percent-decodings, until stable (or ``rounds`` times: more is refused)."""
    forms = [path]
    for _ in range(rounds):
        decoded = unquote(forms[-1])
        if decoded == forms[-1]:
            return forms
        forms.append(decoded)
    raise FhirUrlError("URL is percent-encoded more than a few times over")


def _check_path(path: str) -> None:
    for form in _decoded_forms(path):
        if _UNSAFE.search(form):
            raise FhirUrlError("URL path holds whitespace, control characters or a backslash")
        if any(segment in (".", "..") for segment in form.split("/")):
            raise FhirUrlError("URL path holds a dot segment (also when percent-encoded)")


def check_url(url: str, *, max_length: int = MAX_URL_LENGTH, allow_query: bool = True) -> tuple[str, str, int | None, str, str]:
    """Parts (scheme, host, port, path, query) of a URL safe to send a token to, or FhirUrlError."""
    if not isinstance(url, str) or not url:
        raise FhirUrlError("URL is empty")
    if len(url) > max_length:
        raise FhirUrlError(f"URL is over {max_length} characters")
    if not url.isascii() or _UNSAFE.search(url):
        raise FhirUrlError("URL holds non-ASCII, whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise FhirUrlError("URL cannot be parsed") from exc
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise FhirUrlError("URL is not http(s)")
    if not parts.hostname or parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise FhirUrlError("URL has no host, or has user info")
    if parts.fragment or (parts.query and not allow_query) or (not allow_query and "?" in url):
        raise FhirUrlError("URL has a query or fragment")
    _check_path(parts.path)
    if port == _DEFAULT_PORTS[scheme]:
        port = None
    return scheme, parts.hostname.lower(), port, parts.path, parts.query


def check_base(url: str, *, max_length: int = MAX_BASE_LENGTH) -> str:
    """The normalised FHIR base URL, or FhirUrlError (nothing has been sent yet)."""
    if not isinstance(url, str):
        raise FhirUrlError("URL is not a string")
    if len(url) > max_length:  # before the cache: a huge value is never kept
        raise FhirUrlError(f"URL is over {max_length} characters")
    return _check_base(url, max_length)


@lru_cache(maxsize=256)
def _check_base(url: str, max_length: int) -> str:
    """(Cached: an EHR sends the same few bases on every call.)"""
    scheme, host, port, path, _ = check_url(url, max_length=max_length, allow_query=False)
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return urlunsplit((scheme, netloc, path.rstrip("/"), "", ""))


def under_base(url: str, base: str) -> bool:
    """True if ``url`` is the (normalised) ``base`` or a path under it, and safe to send a token to."""
    try:
        scheme, host, port, path, _ = check_url(url)
        b_scheme, b_host, b_port, b_path, _ = check_url(base, allow_query=False)
    except FhirUrlError:
        return False
    if (scheme, host, port) != (b_scheme, b_host, b_port):
        return False
    path, b_path = path.rstrip("/"), b_path.rstrip("/")
    return path == b_path or path.startswith(b_path + "/")
