"""Keeps OAuth codes, states and FHIR query values out of log lines written by libraries.

Why: uvicorn's access log prints ``GET /smart/callback?code=…&state=…`` and httpx logs every
request URL at INFO (``Procedure?patient=…``). A filter on those two loggers cuts query strings
off before any handler sees them. Installed by ``create_app`` (idempotent).
"""
from __future__ import annotations

import logging
import re

_QUERY = re.compile(r"(\?)[^\s\"']*")


class RedactQueryStrings(logging.Filter):
    """Rewrites a record's message and string args with every ``?query`` replaced by ``?…``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_QUERY.sub(r"\1…", a) if isinstance(a, str) else _redact_obj(a) for a in record.args)
        if isinstance(record.msg, str):
            record.msg = _QUERY.sub(r"\1…", record.msg)
        return True


def _redact_obj(value: object) -> object:
    text = str(value)
    return _QUERY.sub(r"\1…", text) if "?" in text else value


def install() -> None:
    for name in ("uvicorn.access", "httpx"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactQueryStrings) for f in logger.filters):
            logger.addFilter(RedactQueryStrings())
