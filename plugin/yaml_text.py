"""YAML for the rules files, parsed by libyaml when PyYAML was built with it, else by PyYAML's own parser.

Why: the command line reads about fifteen rules files on every cold start, and PyYAML's pure-Python
parser took most of that start (about 0.5 s of CPU of `cds97530 check`'s ~1.8 s, 2026-12-01). libyaml
parses the same YAML 1.1 with the same safe constructors, so the documents are the same.
"""
from __future__ import annotations

from typing import Any

import yaml

try:
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

YAMLError = yaml.YAMLError


def safe_load(text: str) -> Any:
    """``yaml.safe_load(text)``, with libyaml's parser when there is one."""
    return yaml.load(text, Loader=_SafeLoader)  # a safe loader: CSafeLoader or SafeLoader
