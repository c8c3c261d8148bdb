"""Typed errors of the evaluation library.

    PluginError
    ├── FhirInputError(ValueError)   the input is not usable FHIR (not JSON object, no resources, wrong types)
    ├── AttachmentError(ValueError)  a note attachment cannot be turned into text
    └── RuleSetError(ValueError)     a YAML rule, lexicon or payer file is invalid (names file and path)

Adapters translate these at their boundary (CLI exit 2, HTTP 400/412); nothing else is raised
on bad input.
"""
from __future__ import annotations


class PluginError(Exception):
    """Base of every error this library raises on purpose."""


class FhirInputError(PluginError, ValueError):
    """The input cannot be read as the FHIR this library needs."""


class AttachmentError(PluginError, ValueError):
    """A DocumentReference attachment could not be turned into text."""


class RuleSetError(PluginError, ValueError):
    """A packaged data file (rules, lexicons, payer profiles, fee tables) is invalid."""

    def __init__(self, message: str, *, file: str = "", path: str = "") -> None:
        where = ":".join(p for p in (file, path) if p)
        super().__init__(f"{where}: {message}" if where else message)
        self.file = file
        self.path = path
